//! `vpnctl tokens`: API tokens.

use std::io::Write;

use serde::Serialize;
use vpnctl_client::ApiClient;

use super::{CliError, TokenScope, TokensCommand, json};

pub(super) async fn run(
    api: &ApiClient,
    cmd: TokensCommand,
    as_json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let print = |out: &mut dyn Write, t: &vpnctl_core::ApiToken| {
        writeln!(
            out,
            "{:<5} {:<8} {:<24} created {}",
            t.id,
            t.scope.to_string(),
            t.label,
            t.created_at.to_date()
        )
    };
    match cmd {
        TokensCommand::List => {
            let list = api.tokens().await?;
            if as_json {
                return json(out, &list);
            }
            for t in &list {
                print(out, t)?;
            }
        }
        TokensCommand::Create { scope, label } => {
            let scope = match scope {
                TokenScope::Admin => vpnctl_core::Scope::Admin,
                TokenScope::Bot => vpnctl_core::Scope::Bot,
                TokenScope::Metrics => vpnctl_core::Scope::Metrics,
            };
            let (token, secret) = api.create_token(scope, &label).await?;
            if as_json {
                #[derive(Serialize)]
                struct Out<'a> {
                    token: &'a vpnctl_core::ApiToken,
                    secret: &'a str,
                }
                return json(
                    out,
                    &Out {
                        token: &token,
                        secret: secret.expose(),
                    },
                );
            }
            print(out, &token)?;
            writeln!(out, "secret (shown once, store it like a password):")?;
            writeln!(out, "{}", secret.expose())?;
        }
        TokensCommand::Revoke { id } => {
            let token = api.revoke_token(vpnctl_core::TokenId(id)).await?;
            if as_json {
                return json(out, &token);
            }
            write!(out, "revoked ")?;
            print(out, &token)?;
        }
    }
    Ok(())
}
