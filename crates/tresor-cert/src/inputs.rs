//! The typed inputs of the cert method's paths (`tresor_sdk::input!`). A certificate role
//! write and a config write change only what they send (`Opt` kinds; a role's `token_*`
//! fields are `TokenParams`', which `certs/:name` declares next to [`CertInput`]).

tresor_sdk::input! {
    /// The `name` of `certs/:name`.
    pub(crate) struct CertNameInput {
        name: Str, "The name of the certificate role (compared without case).";
    }
}

tresor_sdk::input! {
    /// `certs/:name`, besides the name and the `token_*` fields.
    pub(crate) struct CertInput {
        certificate: OptStr, "The PEM-encoded certificate(s) to trust: a CA, whose descendants may log in, or a leaf, which may log in as itself.";
        display_name: OptStr, "The name tokens issued through this role are displayed with (default: the role name).";
        allowed_names: OptList, "Deprecated: globs of which one must match the common name, a DNS SAN or an email SAN.";
        allowed_common_names: OptList, "Globs of which one must match the certificate's common name.";
        allowed_dns_sans: OptList, "Globs of which one must match one of the certificate's DNS SANs.";
        allowed_email_sans: OptList, "Globs of which one must match one of the certificate's email SANs.";
        allowed_uri_sans: OptList, "Globs of which one must match one of the certificate's URI SANs.";
        allowed_organizational_units: OptList, "Globs of which one must match one of the subject's organizational units.";
        required_extensions: OptList, "Extensions the certificate must carry: \"<oid>:<glob>\" against the extension's string value, or \"hex:<oid>:<glob>\" against its DER value in hex.";
        allowed_metadata_extensions: OptList, "Extension OIDs whose string values are added to the login's metadata (keys spell the OID with '-' for '.').";
        ocsp_enabled: OptBool, "Check the certificate with its OCSP responder at login and renewal.";
        ocsp_ca_certificates: OptStr, "PEM-encoded responder certificates trusted to sign OCSP answers, besides the issuer.";
        ocsp_servers_override: OptList, "OCSP responder URLs to ask instead of the certificate's own (Authority Information Access).";
        ocsp_fail_open: OptBool, "Allow the login when no responder gives an answer (a 'revoked' answer always refuses).";
        ocsp_query_all_servers: OptBool, "Ask every responder and require each to answer 'good', instead of taking the first answer.";
        ocsp_this_update_max_age: OptDuration, "Refuse OCSP answers produced longer ago than this (0: any age).";
        ocsp_max_retries: OptInt, "How many more times to ask a responder that cannot be reached.", default = 4;
        lease: OptInt, "Deprecated: use token_ttl. The TTL of tokens, in seconds.";
    }
}

tresor_sdk::input! {
    /// `crls/:name`.
    pub(crate) struct CrlInput {
        name: Str, "The name of the CRL (compared without case).";
        crl: Str, "The CRL: PEM (X509 CRL), or base64-encoded DER.";
        url: Str, "Not supported: fetching CRLs from a distribution point. Post the CRL itself.";
    }
}

tresor_sdk::input! {
    /// `config`.
    pub(crate) struct ConfigInput {
        disable_binding: OptBool, "Do not require a renewal's client certificate to be the login's.";
        enable_identity_alias_metadata: OptBool, "Copy the login's metadata onto its identity alias.";
        ocsp_cache_size: OptInt, "Accepted for compatibility (OCSP answers are not cached).", default = 100;
        role_cache_size: OptInt, "Accepted for compatibility (roles are read from storage).", default = 200;
        enable_metadata_on_failures: OptBool, "Accepted for compatibility.";
    }
}

tresor_sdk::input! {
    /// `login`.
    pub(crate) struct LoginInput {
        name: Str, "The certificate role to log in through (default: the first that matches).";
    }
}
