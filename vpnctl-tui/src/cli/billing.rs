//! `vpnctl plans` and `vpnctl payments`: what the bot sells for Telegram Stars,
//! what was paid, refunds and revenue; `vpnctl broadcast(s)`: texts to many users.

use std::io::Write;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt as _;
use vpnctl_api::billing::{CreatePlan, Payment, PaymentQuery, Plan, PlanName, Refund};
use vpnctl_client::ApiClient;
use vpnctl_core::{PaymentId, PlanId, Quota};

use super::{
    Ask, BroadcastArgs, BroadcastsCommand, CliError, JsonArray, PaymentsCommand, PlansCommand,
    QuotaSize, confirm, date, json, resolve,
};
use vpnctl_api::broadcast::{Audience, Broadcast, CreateBroadcast};

pub(super) fn plan_id(text: &str) -> Result<PlanId, CliError> {
    text.trim().parse::<PlanId>().map_err(|_| {
        CliError::Usage(format!(
            "{text:?} is not a plan id (`plan2`, `2`; `vpnctl plans list`)"
        ))
    })
}

fn payment_id(text: &str) -> Result<PaymentId, CliError> {
    text.trim().parse::<PaymentId>().map_err(|_| {
        CliError::Usage(format!(
            "{text:?} is not a payment id (`pay3`, `3`; `vpnctl payments list`)"
        ))
    })
}

fn plan_line(p: &Plan) -> String {
    let quota = p.quota.map_or_else(
        || "no quota".to_owned(),
        |q| {
            format!(
                "{} {}",
                vpnctl_core::units::traffic(q.bytes, vpnctl_core::Locale::En),
                q.period
            )
        },
    );
    format!(
        "{:<7} {:<20} {:>11} {:>4} days {:>3} devices  {quota}{}{}",
        format!("plan{}", p.id),
        p.name.en,
        if p.trial {
            "not sold".to_owned()
        } else {
            format!("{} stars", p.stars)
        },
        p.days,
        p.device_limit,
        if p.recurring {
            "  monthly subscription"
        } else if p.trial {
            "  trial (invites only)"
        } else {
            ""
        },
        if p.active { "" } else { "  retired" },
    )
}

pub(super) async fn plans(
    api: &ApiClient,
    cmd: PlansCommand,
    as_json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match cmd {
        PlansCommand::List { all } => {
            let plans = api.plans(all).await?;
            if as_json {
                return json(out, &plans);
            }
            if plans.is_empty() {
                writeln!(
                    out,
                    "no plans on sale; `vpnctl plans add NAME --days 30 --stars 100` adds one"
                )?;
            }
            for p in &plans {
                writeln!(out, "{}", plan_line(p))?;
            }
            Ok(())
        }
        PlansCommand::Add {
            name,
            name_ru,
            days,
            stars,
            devices,
            quota,
            quota_period,
            recurring,
            trial,
        } => {
            let quota = match quota {
                None | Some(QuotaSize::None) => None,
                Some(QuotaSize::Bytes(bytes)) => Some(Quota {
                    bytes,
                    period: quota_period,
                }),
            };
            let plan = api
                .create_plan(&CreatePlan {
                    name: PlanName {
                        en: name,
                        ru: name_ru,
                    },
                    days,
                    stars: stars.unwrap_or(0),
                    device_limit: devices,
                    quota,
                    recurring,
                    trial,
                })
                .await?;
            if as_json {
                return json(out, &plan);
            }
            let what = if plan.trial {
                "trial (grant it with `vpnctl invites create --plan`)"
            } else {
                "on sale"
            };
            writeln!(out, "{what}: {}", plan_line(&plan))?;
            Ok(())
        }
        PlansCommand::Retire { plan } => {
            let id = plan_id(&plan)?;
            let plan = match api.retire_plan(id).await {
                Ok(plan) => plan,
                Err(e) if e.status() == Some(404) => {
                    return Err(CliError::NotFound(format!(
                        "no plan{id}; `vpnctl plans list --all` shows them"
                    )));
                }
                Err(e) => return Err(e.into()),
            };
            if as_json {
                return json(out, &plan);
            }
            writeln!(out, "retired: {}", plan_line(&plan))?;
            Ok(())
        }
    }
}

fn refund_word(r: Option<&Refund>) -> String {
    match r {
        None => String::new(),
        Some(Refund::Requested { .. }) => "  refund requested".into(),
        Some(Refund::Done { .. }) => "  refunded".into(),
        Some(Refund::Failed { reason, .. }) => format!("  refund failed: {reason}"),
    }
}

fn payment_line(p: &Payment) -> String {
    format!(
        "{:<7} {} u{:<6} plan{:<4} {:>5} stars +{:>3} days  {}{}{}",
        format!("pay{}", p.id),
        p.at.to_rfc3339(),
        p.user,
        p.plan,
        p.stars,
        p.days,
        p.telegram_charge_id,
        if p.recurring { "  renewal" } else { "" },
        refund_word(p.refund.as_ref()),
    )
}

pub(super) async fn payments(
    api: &ApiClient,
    cmd: PaymentsCommand,
    as_json: bool,
    out: &mut dyn Write,
    ask: &mut Ask<'_>,
) -> Result<(), CliError> {
    match cmd {
        PaymentsCommand::List { user, limit } => {
            let query = PaymentQuery {
                user: match user.as_deref() {
                    Some(u) => Some(resolve::user(api, u).await?.id),
                    None => None,
                },
                ..PaymentQuery::default()
            };
            let limit = limit.unwrap_or(usize::MAX);
            let mut array = if as_json {
                Some(JsonArray::start(out)?)
            } else {
                None
            };
            let mut shown = 0;
            let mut pages = std::pin::pin!(api.payments_pages(query));
            'pages: while let Some(page) = pages.try_next().await? {
                for p in &page {
                    if shown == limit {
                        break 'pages;
                    }
                    shown += 1;
                    match &mut array {
                        Some(array) => array.push(out, p)?,
                        None => writeln!(out, "{}", payment_line(p))?,
                    }
                }
            }
            match array {
                Some(array) => array.finish(out),
                None => {
                    if shown == 0 {
                        writeln!(out, "no payments")?;
                    }
                    Ok(())
                }
            }
        }
        PaymentsCommand::Show { payment } => {
            let p = find(api, payment_id(&payment)?).await?;
            if as_json {
                return json(out, &p);
            }
            writeln!(out, "{}", payment_line(&p))?;
            writeln!(
                out,
                "access until {} → {}",
                date(p.until_before, "no end"),
                date(p.until_after, "no end")
            )?;
            Ok(())
        }
        PaymentsCommand::Refund {
            payment,
            yes,
            wait_secs,
        } => {
            let id = payment_id(&payment)?;
            let p = find(api, id).await?;
            confirm(
                ask,
                yes,
                &format!(
                    "Refund {} stars of payment pay{} to u{} and take the {} days it bought back?",
                    p.stars, p.id, p.user, p.days
                ),
                || format!("refusing to refund pay{id} without asking; pass --yes"),
            )?;
            api.request_refund(id).await?;
            // The bot carries it out with Telegram and reports back.
            let deadline = Instant::now() + Duration::from_secs(wait_secs);
            loop {
                let p = api.payment(id).await?;
                match &p.refund {
                    Some(Refund::Done { until, .. }) => {
                        if as_json {
                            return json(out, &p);
                        }
                        writeln!(
                            out,
                            "refunded {} stars of pay{}; u{}'s access now ends {}",
                            p.stars,
                            p.id,
                            p.user,
                            date(*until, "never")
                        )?;
                        return Ok(());
                    }
                    Some(Refund::Failed { reason, .. }) => {
                        return Err(CliError::Refused(format!(
                            "Telegram refused the refund of pay{id}: {reason}"
                        )));
                    }
                    _ if Instant::now() >= deadline => {
                        return Err(CliError::Incomplete(format!(
                            "refund of pay{id} requested; the bot has not carried it out yet (is vpnctl-bot running?). `vpnctl payments show pay{id}` tells when it has"
                        )));
                    }
                    _ => tokio::time::sleep(Duration::from_millis(250)).await,
                }
            }
        }
        PaymentsCommand::Revenue { days } => {
            let lines = api.revenue(Some(days)).await?;
            if as_json {
                return json(out, &lines);
            }
            let (mut stars, mut refunded) = (0u64, 0u64);
            for l in &lines {
                stars += l.takings.stars;
                refunded += l.takings.refunded_stars;
                writeln!(
                    out,
                    "{} plan{:<4} {:>4} payments {:>7} stars  {:>3} refunds {:>6} stars  net {:>7}",
                    l.day,
                    l.plan,
                    l.takings.payments,
                    l.takings.stars,
                    l.takings.refunds,
                    l.takings.refunded_stars,
                    l.takings.net()
                )?;
            }
            writeln!(
                out,
                "last {days} days: {stars} stars taken, {refunded} refunded, net {}",
                i128::from(stars) - i128::from(refunded)
            )?;
            Ok(())
        }
    }
}

async fn find(api: &ApiClient, id: PaymentId) -> Result<Payment, CliError> {
    match api.payment(id).await {
        Ok(p) => Ok(p),
        Err(e) if e.status() == Some(404) => Err(CliError::NotFound(format!(
            "no payment pay{id}; `vpnctl payments list` shows them"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// `--to WHO [REGION]` and the words of the text, as typed. `--to` takes up to two
/// `--to WHO [REGION]` and the words of the text, as typed. `--to` takes up to two
/// values, so `--to all Hello` leaves "Hello" with `--to`: it is the text's start.
/// The audience is read by [`Audience`]'s parser, as the dashboard reads it.
fn audience_and_text(to: &[String], words: &[String]) -> Result<(Audience, String), CliError> {
    let taken = if to.first().is_some_and(|w| w.eq_ignore_ascii_case("region")) {
        to.len()
    } else {
        to.len().min(1)
    };
    let audience = to[..taken]
        .join(" ")
        .parse::<Audience>()
        .map_err(|e| CliError::Usage(format!("--to: {e}")))?;
    let text = to[taken..]
        .iter()
        .chain(words)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ");
    if text.trim().is_empty() {
        return Err(CliError::Usage(
            "what should it say? vpnctl broadcast --to all \"text\"".into(),
        ));
    }
    Ok((audience, text))
}

fn broadcast_line(b: &Broadcast) -> String {
    let preview: String = b.text.chars().take(40).collect();
    format!(
        "{:<4} {} to {:<14} {:>13}{}  {preview}{}",
        b.id,
        b.created_at.to_rfc3339(),
        b.audience.to_string(),
        format!("{}/{} handled", b.handled, b.total),
        if b.cancelled_at.is_some() {
            "  cancelled"
        } else {
            ""
        },
        if b.text.chars().count() > 40 {
            "…"
        } else {
            ""
        },
    )
}

pub(super) async fn broadcast(
    api: &ApiClient,
    args: BroadcastArgs,
    as_json: bool,
    out: &mut dyn Write,
    ask: &mut Ask<'_>,
) -> Result<(), CliError> {
    let (audience, text) = audience_and_text(&args.to, &args.text)?;
    let new = CreateBroadcast { text, audience };
    let recipients = api.preview_broadcast(&new).await?;
    if args.dry_run {
        if as_json {
            return json(out, &serde_json::json!({ "recipients": recipients }));
        }
        writeln!(
            out,
            "would reach {recipients} users ({}):\n{}",
            new.audience, new.text
        )?;
        return Ok(());
    }
    if recipients == 0 {
        return Err(CliError::Refused(format!(
            "no user with Telegram is {}; nothing sent",
            new.audience
        )));
    }
    confirm(
        ask,
        args.yes,
        &format!(
            "Send this to {recipients} users ({})?\n---\n{}\n---",
            new.audience, new.text
        ),
        || format!("refusing to message {recipients} users without asking; pass --yes"),
    )?;
    let b = api.create_broadcast(&new).await?;
    if as_json {
        return json(out, &b);
    }
    writeln!(
        out,
        "broadcast {} queued for {} users; the bot sends it within Telegram's limits (`vpnctl broadcasts list` shows how far it got, `vpnctl broadcasts cancel {}` stops it)",
        b.id, b.total, b.id
    )?;
    Ok(())
}

pub(super) async fn broadcasts(
    api: &ApiClient,
    cmd: BroadcastsCommand,
    as_json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match cmd {
        BroadcastsCommand::List => {
            let all = api.broadcasts().await?;
            if as_json {
                return json(out, &all);
            }
            if all.is_empty() {
                writeln!(out, "no broadcasts")?;
            }
            for b in &all {
                writeln!(out, "{}", broadcast_line(b))?;
            }
            Ok(())
        }
        BroadcastsCommand::Cancel { id } => {
            let b = match api.cancel_broadcast(id).await {
                Ok(b) => b,
                Err(e) if e.status() == Some(404) => {
                    return Err(CliError::NotFound(format!(
                        "no broadcast {id}; `vpnctl broadcasts list` shows them"
                    )));
                }
                Err(e) => return Err(e.into()),
            };
            if as_json {
                return json(out, &b);
            }
            writeln!(
                out,
                "broadcast {} cancelled; {} of {} messages had been handled",
                b.id, b.handled, b.total
            )?;
            Ok(())
        }
    }
}
