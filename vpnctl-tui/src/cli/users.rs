//! `vpnctl users`: accounts, access, quotas.

use std::io::Write;

use futures_util::TryStreamExt as _;
use serde::Serialize;
use vpnctl_api::body::{CreateUser, PatchUser, PeerQuery, UserQuery};
use vpnctl_client::ApiClient;
use vpnctl_core::units;
use vpnctl_core::{Access, Quota, QuotaPeriod, Role, Timestamp, User, UserState};

use super::{Ask, CliError, JsonArray, QuotaSize, UsersCommand, confirm, json, resolve};
use crate::app::UserStatus;
use crate::when;

fn print_user(out: &mut dyn Write, u: &User) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<6} {:<20} {:<6} {:<9} until {:<17} quota {}",
        format!("u{}", u.id),
        u.name,
        format!("{:?}", u.role).to_lowercase(),
        UserStatus::of(u, Timestamp::now()).label(),
        when::show_until(u.until),
        u.quota.map_or_else(
            || "none".into(),
            |q| format!("{} {}", units::display(q.bytes), q.period)
        )
    )
}

/// An end of access from now: never in the past (to end access now, disable).
fn future(at: Timestamp, now: Timestamp) -> Result<Timestamp, CliError> {
    if at <= now {
        return Err(CliError::Usage(format!(
            "{} is in the past; to end access now use `vpnctl users disable`",
            when::show(at)
        )));
    }
    Ok(at)
}

pub(super) async fn run(
    api: &ApiClient,
    cmd: UsersCommand,
    as_json: bool,
    out: &mut dyn Write,
    ask: &mut Ask<'_>,
) -> Result<(), CliError> {
    let now = Timestamp::now();
    let user = match cmd {
        UsersCommand::List { name, access } => {
            // Page by page: any number of users in bounded memory.
            let mut array = as_json.then(|| JsonArray::start(out)).transpose()?;
            let query = UserQuery {
                name,
                access,
                ..UserQuery::default()
            };
            let mut pages = std::pin::pin!(api.users_pages(query));
            while let Some(users) = pages.try_next().await? {
                for u in &users {
                    match array.as_mut() {
                        Some(array) => array.push(out, u)?,
                        None => print_user(out, u)?,
                    }
                }
            }
            if let Some(array) = array {
                array.finish(out)?;
            }
            return Ok(());
        }
        UsersCommand::Show { user } => return show(api, &user, as_json, out).await,
        UsersCommand::Add {
            name,
            access,
            devices,
            telegram_id,
            admin,
        } => {
            let until = access.at(now).map(|at| future(at, now)).transpose()?;
            api.create_user(&CreateUser {
                name,
                telegram_id,
                role: admin.then_some(Role::Admin),
                until,
                device_limit: devices,
                locale: None,
            })
            .await?
        }
        UsersCommand::Access {
            user,
            end,
            unlimited,
        } => {
            let until = match end.at(now) {
                Some(at) => Some(future(at, now)?),
                None if unlimited => None,
                None => {
                    return Err(CliError::Usage(
                        "say when access ends: --until WHEN, --days N, --hours N or --unlimited"
                            .into(),
                    ));
                }
            };
            let user = resolve::user(api, &user).await?;
            api.set_access(user.id, until).await?
        }
        UsersCommand::Extend { user, days } => {
            let user = resolve::user(api, &user).await?;
            api.extend_access(user.id, days).await?
        }
        UsersCommand::Disable { user } => {
            let user = resolve::user(api, &user).await?;
            api.set_user_state(user.id, UserState::Disabled).await?
        }
        UsersCommand::Enable { user } => {
            let user = resolve::user(api, &user).await?;
            api.set_user_state(user.id, UserState::Active).await?
        }
        UsersCommand::Quota { user, size, period } => {
            let user = resolve::user(api, &user).await?;
            let quota = match size {
                QuotaSize::None if period.is_some() => {
                    return Err(CliError::Usage(
                        "--period goes with a size; `none` removes the quota".into(),
                    ));
                }
                QuotaSize::None => None,
                QuotaSize::Bytes(bytes) => Some(Quota {
                    bytes,
                    period: period
                        .or(user.quota.map(|q| q.period))
                        .unwrap_or(QuotaPeriod::Monthly),
                }),
            };
            api.update_user(
                user.id,
                &PatchUser {
                    quota: Some(quota),
                    ..PatchUser::default()
                },
            )
            .await?
        }
        UsersCommand::Delete { user, yes } => {
            let user = resolve::user(api, &user).await?;
            let devices = api
                .peers(PeerQuery {
                    user: Some(user.id),
                    node: None,
                    ..PeerQuery::default()
                })
                .await?
                .len();
            confirm(
                ask,
                yes,
                &format!(
                    "Delete user u{} {} and revoke their {devices} devices? Their configs stop working.",
                    user.id, user.name
                ),
                || {
                    format!(
                        "refusing to delete {} without --yes; confirm at a terminal or pass --yes",
                        user.name
                    )
                },
            )?;
            api.delete_user(user.id).await?;
            if as_json {
                return json(
                    out,
                    &serde_json::json!({ "deleted": user.id, "devices_revoked": devices }),
                );
            }
            writeln!(
                out,
                "deleted u{} {} and revoked {devices} devices",
                user.id, user.name
            )?;
            return Ok(());
        }
    };
    if as_json {
        json(out, &user)
    } else {
        Ok(print_user(out, &user)?)
    }
}

/// `vpnctl users show`: core's access verdict, quota and traffic, devices.
async fn show(
    api: &ApiClient,
    text: &str,
    as_json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let user = resolve::user(api, text).await?;
    let (usage, peers, nodes) = tokio::try_join!(
        api.usage(user.id),
        api.peers(PeerQuery {
            user: Some(user.id),
            node: None,
            ..PeerQuery::default()
        }),
        api.nodes()
    )?;
    let now = Timestamp::now();
    let access = Access::of(&user, now);
    if as_json {
        #[derive(Serialize)]
        struct Out<'a> {
            user: &'a User,
            access: Access,
            usage: &'a vpnctl_api::body::UsageView,
            peers: &'a [vpnctl_core::Peer],
        }
        return json(
            out,
            &Out {
                user: &user,
                access,
                usage: &usage,
                peers: &peers,
            },
        );
    }
    print_user(out, &user)?;
    let state = match access {
        Access::Active { until: None } => "active, unlimited".to_owned(),
        Access::Active { until: Some(at) } => format!(
            "active until {} ({} days left)",
            when::show(at),
            access.days_left(now).unwrap_or(0)
        ),
        Access::Disabled => "disabled by an admin".to_owned(),
        Access::Lapsed { ended } => format!("ended {}", when::show(ended)),
        Access::Suspended { resumes, .. } => {
            format!("quota used up, devices resume {}", when::show(resumes))
        }
    };
    writeln!(out, "access   {state}")?;
    writeln!(
        out,
        "telegram {}",
        user.telegram_id.map_or_else(
            || "- (gets configs from an admin)".into(),
            |t| t.to_string()
        )
    )?;
    let bytes = |n: u64| units::traffic(n, vpnctl_core::Locale::En);
    writeln!(
        out,
        "traffic  {} this period (since {}), rx {} · tx {} in total",
        bytes(usage.period_bytes),
        when::show(usage.period_start),
        bytes(usage.total.rx),
        bytes(usage.total.tx)
    )?;
    writeln!(out, "devices  {} of {}", peers.len(), user.device_limit)?;
    for p in &peers {
        let node = nodes
            .iter()
            .find(|v| v.node.id == p.node)
            .map_or_else(|| format!("n{}", p.node), |v| v.node.name.clone());
        writeln!(
            out,
            "  {:<7} {:<16} {:<12} {}",
            format!("p{}", p.id),
            p.device,
            node,
            p.ipv4
        )?;
    }
    Ok(())
}
