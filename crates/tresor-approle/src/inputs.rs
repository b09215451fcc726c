//! The typed inputs of the AppRole method's paths (`tresor_sdk::input!`). A role write
//! changes only what it sends (`Opt` kinds; the `token_*` fields are `TokenParams`', which
//! `role/:role_name` declares next to [`RoleInput`]). Each per-setting sub-path
//! (`role/:role_name/policies`, `.../secret-id-ttl`, ...) declares one small input holding
//! its own setting (and its legacy name), so its help shows only that.

tresor_sdk::input! {
    /// The `role_name` of every `role/:role_name...` path.
    pub(crate) struct RoleNameInput {
        role_name: Str, "Name of the role (case-insensitive): letters, digits, space, hyphen, underscore and period, under 4096 bytes.";
    }
}

tresor_sdk::input! {
    /// `role/:role_name`, besides the `token_*` fields.
    pub(crate) struct RoleInput {
        bind_secret_id: OptBool, "Require a secret ID at login.", default = true;
        secret_id_bound_cidrs: OptList, "CIDR blocks of the addresses that may log in with this role.";
        bound_cidr_list: OptList, "Deprecated: use secret_id_bound_cidrs.";
        secret_id_num_uses: OptInt, "How many logins each secret ID allows by default (0: unlimited).";
        secret_id_ttl: OptDuration, "How long each secret ID lives by default (0: forever).";
        local_secret_ids: OptBool, "Secret IDs local to this cluster; can only be set when the role is created.";
        role_id: OptStr, "The role ID; a random UUID when not given.";
    }
}

tresor_sdk::input! {
    /// `login`.
    pub(crate) struct LoginInput {
        role_id: Str, "The role ID of the role.";
        secret_id: Str, "The secret ID.";
    }
}

tresor_sdk::input! {
    /// `role/:role_name/role-id`.
    pub(crate) struct RoleIdInput {
        role_id: Str, "The new role ID.";
    }
}

tresor_sdk::input! {
    /// `role/:role_name/secret-id/lookup|destroy` and `custom-secret-id`.
    pub(crate) struct SecretIdInput {
        secret_id: Str, "The secret ID.";
    }
}

tresor_sdk::input! {
    /// `role/:role_name/secret-id-accessor/lookup|destroy`.
    pub(crate) struct AccessorInput {
        secret_id_accessor: Str, "The accessor of a secret ID.";
    }
}

tresor_sdk::input! {
    /// `role/:role_name/secret-id` and `custom-secret-id`: the settings of a new secret ID.
    pub(crate) struct NewSecretIdInput {
        metadata: Raw, "Metadata of the secret ID: a JSON object of strings, sent as a JSON string. Set on the tokens its logins get, and logged in audit logs in plaintext.";
        cidr_list: List, "CIDR blocks the secret ID may be used from; within the role's secret_id_bound_cidrs if it has any.";
        token_bound_cidrs: List, "CIDR blocks the tokens of this secret ID's logins work from; overrides the role's, within them.";
        num_uses: OptInt, "How many logins the secret ID allows (0: unlimited); overrides and may not exceed the role's secret_id_num_uses.";
        ttl: OptDuration, "How long the secret ID lives (0: forever); overrides and may not exceed the role's secret_id_ttl.";
    }
}

tresor_sdk::input! {
    /// `role/:role_name/policies`.
    pub(crate) struct PoliciesInput {
        token_policies: OptList, "Policies of the tokens this role's logins get.";
        policies: OptList, "Deprecated: use token_policies.";
    }
}

tresor_sdk::input! {
    /// `role/:role_name/bound-cidr-list`.
    pub(crate) struct BoundCidrListInput {
        bound_cidr_list: OptList, "Deprecated: use secret_id_bound_cidrs.";
    }
}

tresor_sdk::input! {
    /// `role/:role_name/secret-id-bound-cidrs`.
    pub(crate) struct SecretIdBoundCidrsInput {
        secret_id_bound_cidrs: OptList, "CIDR blocks of the addresses that may log in with this role.";
    }
}

tresor_sdk::input! {
    /// `role/:role_name/token-bound-cidrs`.
    pub(crate) struct TokenBoundCidrsInput {
        token_bound_cidrs: OptList, "CIDR blocks of the addresses the issued tokens work from.";
    }
}

tresor_sdk::input! {
    /// `role/:role_name/bind-secret-id`.
    pub(crate) struct BindSecretIdInput {
        bind_secret_id: OptBool, "Whether a login must present a secret ID.";
    }
}

tresor_sdk::input! {
    /// `role/:role_name/secret-id-num-uses`.
    pub(crate) struct SecretIdNumUsesInput {
        secret_id_num_uses: OptInt, "How many logins each secret ID allows (0: unlimited).";
    }
}

tresor_sdk::input! {
    /// `role/:role_name/secret-id-ttl`.
    pub(crate) struct SecretIdTtlInput {
        secret_id_ttl: OptDuration, "How long each secret ID lives (0: forever).";
    }
}

tresor_sdk::input! {
    /// `role/:role_name/period`.
    pub(crate) struct PeriodInput {
        token_period: OptDuration, "Make the issued tokens periodic with this period.";
        period: OptDuration, "Deprecated: use token_period.";
    }
}

tresor_sdk::input! {
    /// `role/:role_name/token-num-uses`.
    pub(crate) struct TokenNumUsesInput {
        token_num_uses: OptInt, "How many requests an issued token may make (0: unlimited).";
    }
}

tresor_sdk::input! {
    /// `role/:role_name/token-ttl`.
    pub(crate) struct TokenTtlInput {
        token_ttl: OptDuration, "The initial TTL of the issued tokens, also used at renewal.";
    }
}

tresor_sdk::input! {
    /// `role/:role_name/token-max-ttl`.
    pub(crate) struct TokenMaxTtlInput {
        token_max_ttl: OptDuration, "The maximum lifetime of the issued tokens.";
    }
}
