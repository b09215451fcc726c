//! The typed inputs of the SSH engine's paths (`tresor_sdk::input!`): each path declares its
//! fields once, here, and its handler reads them as struct fields.

tresor_sdk::input! {
    /// `roles/:role`. A write replaces the whole role.
    pub(crate) struct RoleInput {
        role: Str, "Name of the role: letters, digits, '_', '-', '.' and '@'.";
        key_type: Str, "ca or otp.";
        default_user: Str, "User the certificate or OTP is for when the request names none (required for otp roles). For ca roles it must also be in allowed_users to be used.";
        default_user_template: Bool, "default_user may contain identity templates.";
        allowed_users: Str, "Comma-separated users that may be named ('*': any).";
        allowed_users_template: Bool, "allowed_users may contain identity templates ({{identity.entity.name}}, ...), rendered for the caller.";
        allowed_domains: Str, "Comma-separated domains host certificates may name ('*': any).";
        allowed_domains_template: Bool, "allowed_domains may contain identity templates.";
        allow_user_certificates: Bool, "The role signs user certificates.";
        allow_host_certificates: Bool, "The role signs host certificates.";
        allow_subdomains: Bool, "Host certificates may name subdomains of allowed_domains.";
        allow_bare_domains: Bool, "Host certificates may name allowed_domains themselves.";
        allow_empty_principals: Bool, "Sign certificates valid for any principal when none is requested or defaulted (dangerous).";
        allowed_extensions: Str, "Comma-separated extensions a request may set ('*': any; empty: none).";
        default_extensions: StrMap, "Extensions set when the request sets none, e.g. {\"permit-pty\": \"\"}.";
        default_extensions_template: Bool, "Values of default_extensions may contain identity templates.";
        allowed_critical_options: Str, "Comma-separated critical options a request may set (empty: any).";
        default_critical_options: StrMap, "Critical options set when the request sets none.";
        allowed_user_key_lengths: Map, "Key types (rsa, ec, ed25519) and the sizes allowed for each, e.g. {\"rsa\": [3072, 4096]}. Empty: any type (RSA at least 2048 bits).";
        algorithm_signer: Str, "Signature hash for RSA CA keys: default (rsa-sha2-256), rsa-sha2-256 or rsa-sha2-512. ssh-rsa (SHA-1) is refused.";
        key_id_format: Str, "Key ID template: {{token_display_name}}, {{role_name}}, {{public_key_hash}}. Default vault-{{token_display_name}}-{{public_key_hash}}.";
        ttl: Duration, "Default certificate lifetime (default: the mount's).";
        max_ttl: Duration, "Longest certificate lifetime (default: the mount's).";
        not_before_duration: OptDuration, "How far before now certificates become valid, for clock skew (default 30s).";
        allow_user_key_ids: Bool, "Requests may set the certificate's key_id.";
        issuer_ref: Str, "An issuer: its id, its name, or 'default'.";
        cidr_list: Str, "OTP roles: comma-separated CIDR blocks the role's hosts are in.";
        exclude_cidr_list: Str, "OTP roles: comma-separated CIDR blocks excluded from cidr_list.";
        port: Int, "OTP roles: the SSH port of the hosts (default 22).";
        key: Str, "Ignored: the removed dynamic-key mode's key name (clients such as hvac still send it, empty).";
        admin_user: Str, "Ignored: the removed dynamic-key mode's admin user.";
        key_bits: Int, "Ignored: the removed dynamic-key mode's key size.";
        install_script: Str, "Ignored: the removed dynamic-key mode's install script.";
        key_option_specs: Str, "Ignored: the removed dynamic-key mode's authorized_keys options.";
    }
}

tresor_sdk::input! {
    /// `config/ca` (and `issuers/import`): generate or import a CA key.
    pub(crate) struct CaKeyInput {
        generate_signing_key: OptBool, "Generate the CA key pair here (the default when no private_key is given).", default = true;
        key_type: Str, "Type of key to generate: ssh-rsa (default), ecdsa-sha2-nistp256, ecdsa-sha2-nistp384, ecdsa-sha2-nistp521, ssh-ed25519, or rsa, ec, ed25519.", default = "ssh-rsa";
        key_bits: Int, "Size of the generated key: RSA 2048, 3072 or 4096 (default 4096); EC 256, 384 or 521 (default 256).";
        private_key: Str, "A CA private key to import, in PEM: PKCS#8, PKCS#1 (RSA), SEC1 (EC), or an unencrypted OpenSSH Ed25519 or ECDSA key.";
        public_key: Str, "The public half of private_key (optional; checked against it when given).";
    }
}

tresor_sdk::input! {
    /// `issuers/import[/:issuer_name]`: a CA key (its fields are [`CaKeyInput`]'s) as a new
    /// issuer.
    pub(crate) struct ImportInput {
        issuer_name: Str, "Name of the issuer (optional).";
        set_default: Bool, "Make this issuer the default (the first issuer always is).";
    }
}

tresor_sdk::input! {
    /// `config/issuers`.
    pub(crate) struct DefaultIssuerInput {
        default: Str, "The issuer (id or name) roles naming 'default' sign with.";
    }
}

tresor_sdk::input! {
    /// `config/zeroaddress`.
    pub(crate) struct ZeroAddressInput {
        roles: List, "OTP roles that accept any client address.";
    }
}

tresor_sdk::input! {
    /// `issuer/:issuer_ref/public_key`.
    pub(crate) struct IssuerRefInput {
        issuer_ref: Str, "An issuer: its id, its name, or 'default'.";
    }
}

tresor_sdk::input! {
    /// `issuer/:issuer_ref`.
    pub(crate) struct IssuerInput {
        issuer_ref: Str, "An issuer: its id, its name, or 'default'.";
        issuer_name: OptStr, "New name of the issuer.";
    }
}

tresor_sdk::input! {
    /// What `sign/:role` and `issue/:role` ask of the certificate.
    pub(crate) struct CertRequest {
        valid_principals: List, "Users (user certificates) or host names (host certificates) the certificate names; each must be allowed by the role. Empty: the role's default_user.";
        cert_type: Str, "user (default) or host.", default = "user";
        key_id: Str, "Key ID of the certificate; honoured only when the role has allow_user_key_ids.";
        ttl: Duration, "Requested lifetime; defaults to the role's ttl and is capped at its max_ttl (or the mount's).";
        critical_options: StrMap, "Critical options to set; each must be in the role's allowed_critical_options (empty: any). None given: the role's defaults.";
        extensions: StrMap, "Extensions to set; each must be in the role's allowed_extensions ('*': any; empty: none). None given: the role's defaults.";
    }
}

tresor_sdk::input! {
    /// `sign/:role`, with [`CertRequest`].
    pub(crate) struct SignInput {
        role: Str, "Name of the role: letters, digits, '_', '-', '.' and '@'.";
        public_key: Str, "The SSH public key to sign (authorized_keys form).", required;
    }
}

tresor_sdk::input! {
    /// `issue/:role`, with [`CertRequest`].
    pub(crate) struct IssueInput {
        role: Str, "Name of the role: letters, digits, '_', '-', '.' and '@'.";
        key_type: Str, "Type of key pair to generate: rsa (default), ec, ed25519 (or OpenSSH names).", default = "rsa";
        key_bits: Int, "Size: RSA 2048, 3072 (default) or 4096; EC 256 (default), 384 or 521.";
    }
}

tresor_sdk::input! {
    /// `creds/:role`.
    pub(crate) struct CredsInput {
        role: Str, "Name of the role: letters, digits, '_', '-', '.' and '@'.";
        ip: Str, "Address of the host the OTP is for.", required;
        username: Str, "User on the host (default: the role's default_user).";
    }
}

tresor_sdk::input! {
    /// `verify`.
    pub(crate) struct VerifyInput {
        otp: Str, "The one-time password.", required;
    }
}

tresor_sdk::input! {
    /// `lookup`.
    pub(crate) struct LookupInput {
        ip: Str, "An IP address.", required;
    }
}
