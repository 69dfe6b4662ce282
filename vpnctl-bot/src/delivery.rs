//! Sending a config: the `.conf` document, then its QR code with the import steps,
//! each scheduled for deletion as soon as it is in the chat. The same for
//! `/get_config`, `/regen` and a moved device's notice.
//!
//! The document is not sent with `protect_content` unless the operator asks for it
//! (`--protect-configs`): Telegram would then block saving it, and the WireGuard
//! apps on Windows and iOS need the file saved or "opened in" them.

use teloxide::RequestError;
use teloxide::prelude::*;
use teloxide::types::{ChatId, InputFile, MessageId};
use tracing::warn;
use vpnctl_core::Locale;

use crate::i18n::Text;
use crate::pacer::Class;
use crate::services::Services;

/// One config to send.
#[derive(Clone)]
pub struct ConfigFile {
    /// `<tunnel>.conf`: the name the WireGuard apps show.
    pub file_name: String,
    pub text: String,
    /// `None` when the config cannot be shown as a QR code: the file goes alone.
    pub qr_png: Option<Vec<u8>>,
    /// The document's caption.
    pub caption: String,
}

impl ConfigFile {
    /// Whether the config needs the AmneziaWG app (it has AWG keys).
    pub fn awg(&self) -> bool {
        vpnctl_core::render::needs_amneziawg(&self.text)
    }
}

impl std::fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigFile")
            .field("file_name", &self.file_name)
            .field("text", &"***")
            .finish_non_exhaustive()
    }
}

/// The config's QR code, or `None` when the control plane says it cannot make one
/// (the config is too long for a QR code): then the file is sent alone.
pub async fn fetch_qr(
    api: &vpnctl_client::ApiClient,
    peer: vpnctl_core::PeerId,
) -> Result<Option<Vec<u8>>, vpnctl_client::ClientError> {
    match api.peer_qr_png(peer).await {
        Ok(png) => Ok(Some(png)),
        Err(e) if e.status() == Some(400) => {
            warn!(%peer, error = %e, "no QR code for this config; sending the file alone");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// `<tunnel>.conf`, the tunnel name the control plane chose if it is valid for the
/// apps, else one made from the node and device names (`awg-…` for a config that
/// needs the AmneziaWG app).
pub fn tunnel_file_name(tunnel: Option<&str>, node: &str, device: &str, config: &str) -> String {
    let kind = if vpnctl_core::render::needs_amneziawg(config) {
        vpnctl_core::transport::TransportKind::Amneziawg
    } else {
        vpnctl_core::transport::TransportKind::Wireguard
    };
    let name = tunnel
        .filter(|t| vpnctl_core::render::is_valid_tunnel_name(t))
        .map_or_else(
            || vpnctl_core::render::transport_tunnel_name(kind, node, device),
            str::to_owned,
        );
    format!("{name}.conf")
}

impl Services {
    /// Sends the document and the QR code, one after the other.
    pub async fn send_config(
        &self,
        chat: ChatId,
        class: Class,
        l: Locale,
        file: &ConfigFile,
    ) -> Result<(), RequestError> {
        self.send_config_document(chat, class, file).await?;
        self.send_config_qr(chat, class, l, file).await
    }

    /// The `.conf` document, with its caption.
    pub async fn send_config_document(
        &self,
        chat: ChatId,
        class: Class,
        file: &ConfigFile,
    ) -> Result<(), RequestError> {
        let request = self
            .tg
            .raw()
            .send_document(
                chat,
                InputFile::memory(file.text.clone().into_bytes()).file_name(file.file_name.clone()),
            )
            .caption(file.caption.clone())
            .protect_content(self.policy.protect_configs);
        let sent = self.tg.send(chat, class, request).await?;
        self.delete_later(chat, sent.id).await;
        Ok(())
    }

    /// The QR code, with how to import and when both are deleted (nothing when the
    /// config has no QR code).
    pub async fn send_config_qr(
        &self,
        chat: ChatId,
        class: Class,
        l: Locale,
        file: &ConfigFile,
    ) -> Result<(), RequestError> {
        let Some(qr_png) = &file.qr_png else {
            return Ok(());
        };
        let caption = Text::QrCaption {
            delete_after: self.policy.delete_after,
            awg: file.awg(),
        }
        .render(l);
        let request = self
            .tg
            .raw()
            .send_photo(
                chat,
                InputFile::memory(qr_png.clone()).file_name(if file.awg() {
                    "amneziawg-qr.png"
                } else {
                    "wireguard-qr.png"
                }),
            )
            .caption(caption)
            .protect_content(self.policy.protect_configs);
        let sent = self.tg.send(chat, class, request).await?;
        self.delete_later(chat, sent.id).await;
        Ok(())
    }

    async fn delete_later(&self, chat: ChatId, message: MessageId) {
        let Some(after) = self.policy.delete_after else {
            return;
        };
        if let Err(e) = self.deletions.schedule(chat, &[message], after).await {
            // The user was told it would be deleted: say loudly that it will not be.
            warn!(error = %e, chat = chat.0, "could not schedule the deletion of a sent config");
        }
    }
}
