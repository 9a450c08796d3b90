//! What a caller asks to do, as the policy sees it.

/// Every RPC the policy governs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rpc {
    /// Broker/GetBearer.
    GetBearer,
    /// Broker/MintAccessToken.
    MintAccessToken,
    /// Broker/Recommend.
    Recommend,
    /// Broker/ValidateWebhook.
    ValidateWebhook,
    /// Admin/PutCredential.
    PutCredential,
    /// Admin/GetCredential.
    GetCredential,
    /// Admin/ListCredentials.
    ListCredentials,
    /// Admin/DeleteCredential.
    DeleteCredential,
    /// Admin/ReloadPolicy.
    ReloadPolicy,
    /// Admin/RotateCredential.
    RotateCredential,
    /// Admin/Backup: a snapshot of every sealed record.
    Backup,
    /// Admin/OpenConsole: a one-time login link to the operator console.
    OpenConsole,
    /// The console's bearer cache view (no RPC).
    ConsoleBearerCache,
    /// The console's audit view and its live stream (no RPC).
    ConsoleAudit,
    /// The console's health view (no RPC).
    ConsoleHealth,
}

impl Rpc {
    /// Every RPC, for validating policy files.
    pub const ALL: [Rpc; 15] = [
        Rpc::GetBearer,
        Rpc::MintAccessToken,
        Rpc::Recommend,
        Rpc::ValidateWebhook,
        Rpc::PutCredential,
        Rpc::GetCredential,
        Rpc::ListCredentials,
        Rpc::DeleteCredential,
        Rpc::ReloadPolicy,
        Rpc::RotateCredential,
        Rpc::Backup,
        Rpc::OpenConsole,
        Rpc::ConsoleBearerCache,
        Rpc::ConsoleAudit,
        Rpc::ConsoleHealth,
    ];

    /// The method name, as written in policy files and audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            Rpc::GetBearer => "GetBearer",
            Rpc::MintAccessToken => "MintAccessToken",
            Rpc::Recommend => "Recommend",
            Rpc::ValidateWebhook => "ValidateWebhook",
            Rpc::PutCredential => "PutCredential",
            Rpc::GetCredential => "GetCredential",
            Rpc::ListCredentials => "ListCredentials",
            Rpc::DeleteCredential => "DeleteCredential",
            Rpc::ReloadPolicy => "ReloadPolicy",
            Rpc::RotateCredential => "RotateCredential",
            Rpc::Backup => "Backup",
            Rpc::OpenConsole => "OpenConsole",
            Rpc::ConsoleBearerCache => "ConsoleBearerCache",
            Rpc::ConsoleAudit => "ConsoleAudit",
            Rpc::ConsoleHealth => "ConsoleHealth",
        }
    }

    /// True for the operators' Admin service, which needs `admin = true`.
    pub fn is_admin(self) -> bool {
        matches!(
            self,
            Rpc::PutCredential
                | Rpc::GetCredential
                | Rpc::ListCredentials
                | Rpc::DeleteCredential
                | Rpc::ReloadPolicy
                | Rpc::RotateCredential
                | Rpc::Backup
                | Rpc::OpenConsole
                | Rpc::ConsoleBearerCache
                | Rpc::ConsoleAudit
                | Rpc::ConsoleHealth
        )
    }

    /// True for RPCs that change what every credential is governed by
    /// (ReloadPolicy, which also resets every rate limit), or read every
    /// record (Backup): only a rule
    /// without a credential limit may allow them.
    pub fn acts_on_every_credential(self) -> bool {
        matches!(self, Rpc::ReloadPolicy | Rpc::Backup)
    }

    /// Parses a method name.
    pub fn parse(name: &str) -> Option<Rpc> {
        Rpc::ALL.into_iter().find(|rpc| rpc.as_str() == name)
    }
}

/// A grant kind in a minted Access Token, named by its key in `grants`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantKind {
    /// `voice`.
    Voice,
    /// `video`.
    Video,
    /// `chat`.
    Chat,
    /// `data_sync`.
    Sync,
    /// `task_router`.
    TaskRouter,
    /// `player`.
    Playback,
}

impl GrantKind {
    /// Every grant kind.
    pub const ALL: [GrantKind; 6] = [
        GrantKind::Voice,
        GrantKind::Video,
        GrantKind::Chat,
        GrantKind::Sync,
        GrantKind::TaskRouter,
        GrantKind::Playback,
    ];

    /// The name used in policy files and audit events (the request field name).
    pub fn as_str(self) -> &'static str {
        match self {
            GrantKind::Voice => "voice",
            GrantKind::Video => "video",
            GrantKind::Chat => "chat",
            GrantKind::Sync => "sync",
            GrantKind::TaskRouter => "task_router",
            GrantKind::Playback => "playback",
        }
    }

    /// Parses a grant kind name.
    pub fn parse(name: &str) -> Option<GrantKind> {
        GrantKind::ALL.into_iter().find(|g| g.as_str() == name)
    }
}

/// One request as the policy sees it.
#[derive(Debug, Clone, Default)]
pub struct Action<'a> {
    /// The RPC; `None` only in tests of defaults.
    pub rpc: Option<Rpc>,
    /// The credential named by the request, if any.
    pub credential: Option<&'a str>,
    /// Grant kinds of a mint.
    pub grants: Vec<GrantKind>,
    /// The identity a mint is for.
    pub identity: Option<&'a str>,
    /// The lifetime a mint asks for, in seconds.
    pub ttl_seconds: Option<u32>,
}

impl<'a> Action<'a> {
    /// An action on `rpc`.
    pub fn new(rpc: Rpc) -> Self {
        Action {
            rpc: Some(rpc),
            ..Action::default()
        }
    }

    /// With the credential it names (empty names are left out).
    pub fn credential(mut self, name: &'a str) -> Self {
        if !name.is_empty() {
            self.credential = Some(name);
        }
        self
    }

    /// A sentence saying what was asked, for denial messages.
    pub fn describe(&self) -> String {
        let mut text = self.rpc.map(Rpc::as_str).unwrap_or("this call").to_owned();
        if let Some(credential) = self.credential {
            text.push_str(&format!(" on credential {credential:?}"));
        }
        if let Some(identity) = self.identity {
            text.push_str(&format!(" for identity {identity:?}"));
        }
        if !self.grants.is_empty() {
            let grants: Vec<_> = self.grants.iter().map(|g| g.as_str()).collect();
            text.push_str(&format!(" with grants [{}]", grants.join(", ")));
        }
        if let Some(ttl) = self.ttl_seconds {
            text.push_str(&format!(" and a {ttl} s lifetime"));
        }
        text
    }
}
