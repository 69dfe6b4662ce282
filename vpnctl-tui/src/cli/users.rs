//! `vpnctl users`: accounts, access, quotas.

use std::io::Write;

use vpnctl_api::body::{CreateUser, PatchUser};
use vpnctl_client::ApiClient;
use vpnctl_core::units;
use vpnctl_core::{Quota, QuotaPeriod, Role, Timestamp, User, UserId, UserState};

use super::{CliError, QuotaSize, UsersCommand, date, json};
use crate::app::UserStatus;

fn print_user(out: &mut dyn Write, u: &User) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<6} {:<20} {:<6} {:<9} until {:<10} quota {}",
        format!("u{}", u.id),
        u.name,
        format!("{:?}", u.role).to_lowercase(),
        UserStatus::of(u, Timestamp::now()).label(),
        date(u.until, "unlimited"),
        u.quota.map_or_else(
            || "none".into(),
            |q| format!("{} {}", units::display(q.bytes), q.period)
        )
    )
}

/// The one user `text` names: an id (`u12`, `12`) or an exact name.
async fn resolve_user(api: &ApiClient, text: &str) -> Result<User, CliError> {
    let id = text.parse::<UserId>().ok();
    let users = api.users().await?;
    let mut found: Vec<User> = users
        .into_iter()
        .filter(|u| u.name == text || Some(u.id) == id)
        .collect();
    match found.len() {
        0 => Err(CliError::NotFound(format!(
            "no user named or numbered {text:?}; `vpnctl users list` shows them"
        ))),
        1 => Ok(found.remove(0)),
        _ => Err(CliError::Usage(format!(
            "{text:?} matches several users ({}): give the id",
            found
                .iter()
                .map(|u| format!("u{} {}", u.id, u.name))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

pub(super) async fn run(
    api: &ApiClient,
    cmd: UsersCommand,
    as_json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let user = match cmd {
        UsersCommand::List => {
            let users = api.users().await?;
            if as_json {
                return json(out, &users);
            }
            for u in &users {
                print_user(out, u)?;
            }
            return Ok(());
        }
        UsersCommand::Add {
            name,
            days,
            devices,
            telegram_id,
            admin,
        } => {
            let until = days.map(|d| Timestamp::now().plus_days(i64::from(d)));
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
        UsersCommand::Extend { id, days } => api.extend_access(id, days).await?,
        UsersCommand::Disable { id } => api.set_user_state(id, UserState::Disabled).await?,
        UsersCommand::Enable { id } => api.set_user_state(id, UserState::Active).await?,
        UsersCommand::Quota { user, size, period } => {
            let user = resolve_user(api, &user).await?;
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
    };
    if as_json {
        json(out, &user)
    } else {
        Ok(print_user(out, &user)?)
    }
}
