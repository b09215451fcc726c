//! The typed inputs of the database engine's paths (`tresor_sdk::input!`). Settings of an
//! existing connection or role change only when sent (`Opt` kinds); when one is created, a
//! setting not sent takes its default.

tresor_sdk::input! {
    /// `config/:name`.
    pub(crate) struct ConfigInput {
        name: Str, "Name of this connection.";
        plugin_name: OptStr, "postgresql-database-plugin, mysql-database-plugin, mysql-aurora-database-plugin, mysql-rds-database-plugin or mysql-legacy-database-plugin.";
        plugin_version: Str, "Ignored: the plugins are built in.";
        connection_url: OptStr, "The connection string, with {{username}} and {{password}} placeholders: a Go MySQL DSN (user:pass@tcp(host:3306)/db) or a PostgreSQL URL or keyword/value string.";
        username: OptStr, "The root user, put in place of {{username}}.";
        password: OptStr, "The root password, put in place of {{password}}. Never shown.";
        verify_connection: Bool, "Connect before storing the config (default true).", default = true;
        allowed_roles: OptList, "Roles (globs) that may use this connection; empty allows none, * allows all.";
        root_rotation_statements: OptRaw, "Statements that set the root password ({{username}}, {{password}}); default: the plugin's ALTER ROLE/ALTER USER for the current user.";
        password_policy: OptStr, "A password policy of sys/policies/password (or this mount's password_policies/) for generated passwords (default: 20 letters and digits with a '-').";
        max_open_connections: OptInt, "Most connections open at once (default 4).", default = 4;
        max_idle_connections: OptInt, "Idle connections kept: 0 means max_open_connections, negative none.";
        max_connection_lifetime: OptDuration, "A connection older than this is not reused (0: forever).";
        username_template: OptStr, "Go-style template for generated usernames (.DisplayName, .RoleName, random, truncate, printf, ...).";
        tls_ca: OptStr, "MySQL: PEM CA certificate for TLS to the database.";
        tls_certificate_key: OptStr, "MySQL: PEM client certificate and key for TLS. Never shown.";
        root_credentials_rotate_statements: OptRaw, "Alias of root_rotation_statements.";
    }
}

tresor_sdk::input! {
    /// `reset/:name`, `rotate-root/:name` (and the name of `config/:name`).
    pub(crate) struct ConnNameInput {
        name: Str, "Name of the connection.";
    }
}

tresor_sdk::input! {
    /// `roles/:name`.
    pub(crate) struct RoleInput {
        name: Str, "Name of the role.";
        db_name: OptStr, "The connection this role uses.";
        creation_statements: OptRaw, "Statements that create the user: {{name}}, {{password}}, {{expiration}}. Several statements may be separated by ';'.";
        revocation_statements: OptRaw, "Statements that drop the user ({{name}}); default: drop the user (PostgreSQL reassigns and drops what it owns). The user's sessions are always ended.";
        rollback_statements: OptRaw, "Statements run when creation fails ({{name}}); MySQL's default drops the half-created user, PostgreSQL rolls back the transaction.";
        renew_statements: OptRaw, "Statements run on renewal ({{name}}, {{expiration}}); PostgreSQL's default moves VALID UNTIL.";
        default_ttl: OptDuration, "Lease TTL of the credentials (default: the mount's).";
        max_ttl: OptDuration, "Longest lease of the credentials (default: the mount's).";
        credential_type: Str, "Only \"password\".";
        credential_config: Map, "Ignored for password credentials.";
    }
}

tresor_sdk::input! {
    /// `creds/:name` (and the name of `roles/:name`).
    pub(crate) struct RoleNameInput {
        name: Str, "Name of the role.";
    }
}

tresor_sdk::input! {
    /// `static-roles/:name`.
    pub(crate) struct StaticRoleInput {
        name: Str, "Name of the role.";
        db_name: OptStr, "The connection this role uses.";
        username: OptStr, "The existing database account (cannot change).";
        rotation_period: OptDuration, "How often the password is rotated (at least 5s).";
        rotation_schedule: OptStr, "A cron schedule in UTC (minute hour day-of-month month day-of-week, or @daily and the like) to rotate on instead of rotation_period.";
        rotation_window: OptDuration, "With rotation_schedule: how long after a scheduled time the rotation may still happen (at least 1h; 0: until the next one).";
        rotation_statements: OptRaw, "Statements that set the password ({{name}}, {{password}}); default: the plugin's ALTER ROLE/ALTER USER.";
        credential_type: Str, "Only \"password\".";
    }
}

tresor_sdk::input! {
    /// `static-creds/:name`, `rotate-role/:name`.
    pub(crate) struct StaticNameInput {
        name: Str, "Name of the static role.";
    }
}

tresor_sdk::input! {
    /// `password_policies/:name`.
    pub(crate) struct PolicyInput {
        name: Str, "Name of the policy.";
        policy: Str, "The policy in HCL: length, and rule \"charset\" blocks with charset and min-chars (or base64 of it).";
    }
}

tresor_sdk::input! {
    /// `password_policies/:name/generate` (and the name of `password_policies/:name`).
    pub(crate) struct PolicyNameInput {
        name: Str, "Name of the policy.";
    }
}

/// A setting sent, or, when `creating`, its default.
pub(crate) fn sent_or<T>(
    sent: Option<T>,
    creating: bool,
    default: impl FnOnce() -> T,
) -> Option<T> {
    sent.or_else(|| creating.then(default))
}
