//! The typed inputs of the JWT/OIDC method's paths (`tresor_sdk::input!`). A config write
//! replaces the whole configuration (as Vault's does); a role update changes only what it
//! sends (`Opt` kinds; the `token_*` fields are `TokenParams`').

tresor_sdk::input! {
    /// `config`.
    pub(crate) struct ConfigInput {
        oidc_discovery_url: Str, "The OIDC discovery URL, without the .well-known part. Exclusive with jwks_url and jwt_validation_pubkeys.";
        oidc_discovery_ca_pem: Str, "PEM CA certificates to trust for the discovery URL (default: the system's).";
        oidc_client_id: Str, "The OAuth client ID, for OIDC roles.";
        oidc_client_secret: Str, "The OAuth client secret, for OIDC roles. Never returned.";
        oidc_response_mode: Str, "\"query\" (default) or \"form_post\".";
        oidc_response_types: List, "\"code\" (default), or \"id_token\" with form_post.";
        jwks_url: Str, "A JWKS URL to fetch verification keys from. Exclusive with oidc_discovery_url and jwt_validation_pubkeys.";
        jwks_ca_pem: Str, "PEM CA certificates to trust for jwks_url (default: the system's).";
        jwks_pairs: Raw, "Several JWKS endpoints: a list of {jwks_url, jwks_ca_pem} objects. Exclusive with jwks_url.";
        jwt_validation_pubkeys: List, "PEM public keys (or certificates) to verify JWTs with. Exclusive with the URLs.";
        jwt_supported_algs: List, "Allowed signing algorithms (default: every asymmetric one for JWT logins, RS256 for OIDC ID tokens).";
        bound_issuer: Str, "The iss claim every token must have.";
        default_role: Str, "The role used when a login names none.";
        provider_config: Map, "Provider-specific settings (stored and shown; no provider-specific behaviour yet).";
        namespace_in_state: Bool, "Vault Enterprise namespaces in the OIDC state (stored; Tresor has no namespaces).", default = true;
    }
}

tresor_sdk::input! {
    /// `role/:name`.
    pub(crate) struct RoleInput {
        name: Str, "Name of the role.";
        role_type: OptStr, "\"oidc\" (default) or \"jwt\".";
        bound_audiences: OptList, "A token's aud claim must contain one of these (for OIDC: default the client ID).";
        bound_subject: OptStr, "The sub claim a token must have.";
        bound_claims: OptMap, "Claims a token must have: a claim name (or JSON pointer) to a value or a list of values.";
        bound_claims_type: OptStr, "\"string\" (default: values match exactly) or \"glob\" (values are * patterns).";
        claim_mappings: OptStrMap, "Claims (names or JSON pointers) copied into the alias and token metadata, as claim=metadata_key.";
        user_claim: OptStr, "The claim whose value names the identity alias (required).";
        user_claim_json_pointer: OptBool, "Read user_claim as a JSON pointer.";
        groups_claim: OptStr, "The claim (name or JSON pointer) listing the user's groups: each becomes an external group alias.";
        oidc_scopes: OptList, "Scopes asked for in the OIDC flow besides openid.";
        allowed_redirect_uris: OptList, "Redirect URIs the OIDC flow may use (required for OIDC roles).";
        verbose_oidc_logging: OptBool, "Log the claims of OIDC logins (for debugging; they may be personal data).";
        clock_skew_leeway: OptRaw, "Seconds of clock skew allowed on every time claim (0: 60 seconds, -1: none).";
        expiration_leeway: OptRaw, "Seconds past exp still accepted (0: 150 seconds, -1: none).";
        not_before_leeway: OptRaw, "Seconds before nbf already accepted (0: 150 seconds, -1: none).";
        max_age: OptDuration, "For OIDC roles: the longest time since the user last authenticated at the provider.";
    }
}

tresor_sdk::input! {
    /// `login`.
    pub(crate) struct LoginInput {
        role: Str, "The role to log in with (default: the config's default_role).";
        jwt: Str, "The signed JWT.";
    }
}

tresor_sdk::input! {
    /// `oidc/auth_url`.
    pub(crate) struct AuthUrlInput {
        role: Str, "The OIDC role (default: the config's default_role).";
        redirect_uri: Str, "Where the provider sends the browser back; one of the role's allowed_redirect_uris.";
        client_nonce: Str, "A value the client must present again at the callback.";
    }
}

tresor_sdk::input! {
    /// `oidc/callback` (a form_post body may carry the same fields urlencoded instead).
    pub(crate) struct CallbackInput {
        state: Str, "The state from the authorization URL.";
        code: Str, "The authorization code.";
        id_token: Str, "The ID token (response type id_token with form_post).";
        client_nonce: Str, "The client_nonce given to auth_url.";
        error: Str, "An error the provider reported.";
        error_description: Str, "The provider's description of the error.";
    }
}

tresor_sdk::input! {
    /// `oidc/device_auth` (beyond Vault: the device authorization grant, RFC 8628).
    pub(crate) struct DeviceAuthInput {
        role: Str, "The OIDC role (default: the config's default_role).";
    }
}

tresor_sdk::input! {
    /// `oidc/device_poll`.
    pub(crate) struct DevicePollInput {
        state: Str, "The state oidc/device_auth answered.";
    }
}
