//! API tokens, node join secrets and node enrollment.

use tracing::instrument;

use crate::auth::{self, ApiToken, Scope, Secret, TokenId};
use crate::error::{Error, Result};
use crate::keys::PublicKey;
use crate::model::{EventKind, Node, NodeId, validate_display_name};

use super::Vpnctl;

impl Vpnctl {
    /// Creates an API token; the secret is returned once and only its hash is kept.
    #[instrument(skip(self), fields(actor = %self.actor))]
    pub fn create_token(&self, scope: Scope, label: &str) -> Result<(ApiToken, Secret)> {
        let label = validate_display_name("token label", label, crate::model::MAX_LABEL)?;
        let secret = Secret::generate(auth::TOKEN_PREFIX);
        let hash = auth::hash_secret(secret.expose());
        let token = self.write(|tx| {
            if let Scope::Node(node) = scope {
                tx.node(node)?;
            }
            let token = ApiToken {
                id: TokenId(tx.next_id("next_token")?),
                scope,
                label: label.clone(),
                created_at: tx.now(),
            };
            tx.insert_token(&token, &hash)?;
            tx.event(EventKind::TokenCreated {
                token: token.id,
                scope,
            })?;
            Ok(token)
        })?;
        Ok((token, secret))
    }

    /// The token this secret belongs to, if any.
    pub fn authenticate(&self, secret: &str) -> Result<Option<ApiToken>> {
        if !secret.starts_with(auth::TOKEN_PREFIX) || secret.len() > 128 {
            return Ok(None);
        }
        let hash = auth::hash_secret(secret);
        self.read(|rx| rx.token_by_hash(&hash))
    }

    pub fn tokens(&self) -> Result<Vec<ApiToken>> {
        // A method path does not satisfy the higher-ranked closure bound here.
        #[allow(clippy::redundant_closure_for_method_calls)]
        self.read(|rx| rx.tokens())
    }

    #[instrument(skip(self), fields(actor = %self.actor))]
    pub fn revoke_token(&self, id: TokenId) -> Result<ApiToken> {
        self.write(|tx| {
            let token = tx.delete_token(id)?.ok_or_else(|| Error::NotFound {
                entity: crate::error::Entity::Token,
                id: id.to_string(),
            })?;
            tx.event(EventKind::TokenRevoked { token: id })?;
            Ok(token)
        })
    }

    /// A single-use secret with which the node daemon enrolls (see
    /// [`Vpnctl::enroll_node`]), valid for `valid_for_secs`.
    #[instrument(skip(self), fields(actor = %self.actor))]
    pub fn create_join_secret(&self, node: NodeId, valid_for_secs: i64) -> Result<Secret> {
        if !(60..=30 * 86_400).contains(&valid_for_secs) {
            return Err(Error::invalid("validity", "must be 60 s to 30 days"));
        }
        let secret = Secret::generate(auth::JOIN_PREFIX);
        let hash = auth::hash_secret(secret.expose());
        self.write(|tx| {
            tx.node(node)?;
            let expires_at = tx.now().plus_seconds(valid_for_secs);
            tx.insert_join(&hash, &auth::JoinRecord { node, expires_at })
        })?;
        Ok(secret)
    }

    /// Enrolls a node: consumes the join secret, records the node's public key (its
    /// private key never leaves the node) and returns a node-scoped API token. Older
    /// tokens of that node are revoked.
    #[instrument(skip_all, fields(actor = %self.actor))]
    pub fn enroll_node(
        &self,
        join_secret: &str,
        public_key: PublicKey,
        listen_port: Option<u16>,
    ) -> Result<(Node, Secret)> {
        let hash = auth::hash_secret(join_secret);
        let secret = Secret::generate(auth::TOKEN_PREFIX);
        let token_hash = auth::hash_secret(secret.expose());
        if listen_port == Some(0) {
            return Err(Error::invalid("listen port", "must be 1-65535"));
        }
        let node = self.write(|tx| {
            let join = tx.take_join(&hash)?.ok_or(Error::JoinSecretInvalid)?;
            if join.expires_at <= tx.now() {
                return Err(Error::JoinSecretInvalid);
            }
            let mut node = tx.node(join.node)?;
            let old = node.clone();
            node.public_key = Some(public_key);
            if let Some(port) = listen_port {
                node.listen_port = port;
            }
            tx.put_node(&node)?;
            if node.listen_port != old.listen_port {
                tx.bump(node.id, None)?;
            }
            for token in tx.tokens()? {
                if token.scope == Scope::Node(node.id) {
                    tx.delete_token(token.id)?;
                    tx.event(EventKind::TokenRevoked { token: token.id })?;
                }
            }
            let token = ApiToken {
                id: TokenId(tx.next_id("next_token")?),
                scope: Scope::Node(node.id),
                label: format!("node {}", node.name),
                created_at: tx.now(),
            };
            tx.insert_token(&token, &token_hash)?;
            tx.event(EventKind::NodeEnrolled { node: node.id })?;
            Ok(node)
        })?;
        Ok((node, secret))
    }
}
