//! `vpnctl invites`: invite links.

use std::io::Write;

use serde::Serialize;
use vpnctl_api::body::CreateInvite;
use vpnctl_client::ApiClient;
use vpnctl_core::{Grant, InviteId, Role};

use futures_util::TryStreamExt as _;

use super::{CliError, InvitesCommand, JsonArray, date, json};
use crate::runtime;

pub(super) async fn run(
    api: &ApiClient,
    cmd: InvitesCommand,
    as_json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match cmd {
        InvitesCommand::List => {
            // Page by page: any number of invites in bounded memory.
            let mut array = as_json.then(|| JsonArray::start(out)).transpose()?;
            let mut pages = std::pin::pin!(api.invites_pages());
            while let Some(invites) = pages.try_next().await? {
                for i in &invites {
                    if let Some(array) = array.as_mut() {
                        array.push(out, i)?;
                        continue;
                    }
                    writeln!(
                        out,
                        "{:<6} {:<20} uses {}/{} expires {}{}",
                        format!("i{}", i.id),
                        i.label,
                        i.uses_left,
                        i.uses_total,
                        date(i.expires_at, "never"),
                        if i.revoked { " revoked" } else { "" }
                    )?;
                }
            }
            if let Some(array) = array {
                array.finish(out)?;
            }
            Ok(())
        }
        InvitesCommand::Revoke { invite } => {
            let id = invite.trim().parse::<InviteId>().map_err(|_| {
                CliError::Usage(format!(
                    "{invite:?} is not an invite id (`i3`, `3`; `vpnctl invites list`)"
                ))
            })?;
            let revoked = match api.revoke_invite(id).await {
                Ok(invite) => invite,
                Err(e) if e.status() == Some(404) => {
                    return Err(CliError::NotFound(format!(
                        "no invite i{id}; `vpnctl invites list` shows them"
                    )));
                }
                Err(e) => return Err(e.into()),
            };
            if as_json {
                return json(out, &revoked);
            }
            writeln!(out, "revoked i{} {}", revoked.id, revoked.label)?;
            Ok(())
        }
        InvitesCommand::Create {
            label,
            uses,
            days,
            devices,
            plan,
            qr,
        } => {
            let plan = plan.as_deref().map(super::billing::plan_id).transpose()?;
            let created = match api
                .create_invite(&CreateInvite {
                    plan,
                    label,
                    uses: Some(uses),
                    expires_at: None,
                    grant: plan.is_none().then_some(Grant {
                        access_days: Some(days),
                        device_limit: devices,
                        role: Role::User,
                    }),
                })
                .await
            {
                Ok(created) => created,
                Err(e) if e.status() == Some(404) => {
                    return Err(CliError::NotFound(format!(
                        "no plan{}; `vpnctl plans list` shows them",
                        plan.map(|p| p.0).unwrap_or_default()
                    )));
                }
                Err(e) => return Err(e.into()),
            };
            // The link (or the bare code when the server knows no bot) is the point of
            // this command: it is printed this once and nowhere logged.
            let link = created.link.clone().unwrap_or_else(|| created.code.clone());
            if as_json {
                #[derive(Serialize)]
                struct Out<'a> {
                    invite: &'a vpnctl_core::Invite,
                    link: &'a str,
                }
                return json(
                    out,
                    &Out {
                        invite: &created.invite,
                        link: &link,
                    },
                );
            }
            writeln!(
                out,
                "invite i{} created; send this link (shown once):",
                created.invite.id
            )?;
            writeln!(out, "{link}")?;
            if qr {
                writeln!(out, "{}", runtime::qr_lines(&link))?;
            }
            Ok(())
        }
    }
}
