//! The typed inputs of the PKI engine's paths (`tresor_sdk::input!`): each path declares its
//! fields here, in the order its help lists them, and its handlers read them as struct fields.
//! Several paths share a group (the subject of a certificate, the settings of a new CA key,
//! the issuer named in the URL); a path declares its groups in order with
//! `.input::<A>().input::<B>()`, and a handler reads only groups its path declares.
//!
//! Settings change only when sent (`config/*`, `issuer/:issuer_ref`, PATCH `roles/:name`:
//! `Opt` kinds); on an `Opt` kind a `default` is what help documents and what the handler
//! applies itself.

tresor_sdk::input! {
    /// The subject, SANs, lifetime and output format shared by the CA paths (root,
    /// intermediate, keys) and the issue and sign paths.
    pub(crate) struct SubjectInput {
        common_name: Str, "the requested common name";
        alt_names: List, "DNS and email subject alternative names";
        ip_sans: List, "IP subject alternative names";
        uri_sans: List, "URI subject alternative names";
        other_sans: List, "other SANs as <oid>;UTF8:<value>";
        ou: List, "subject OU";
        organization: List, "subject O";
        country: List, "subject C";
        locality: List, "subject L";
        province: List, "subject ST";
        street_address: List, "subject street address";
        postal_code: List, "subject postal code";
        serial_number: Str, "subject serial number";
        exclude_cn_from_sans: Bool, "keep the common name out of the SANs";
        ttl: Duration, "requested time to live";
        not_after: Str, "requested NotAfter (RFC 3339)";
        format: Str, "pem, der or pem_bundle", default = "pem";
        private_key_format: Str, "der, pem or pkcs8";
        not_before_duration: Duration, "backdating of NotBefore", default = 30;
        signature_bits: Int, "hash size of RSA signatures";
        use_pss: Bool, "RSA-PSS signatures (not supported)";
    }
}

tresor_sdk::input! {
    /// The key and issuer settings of a new root or intermediate (and of `keys/generate`);
    /// `exported` is the URL's `{exported}`.
    pub(crate) struct CaInput {
        exported: Str, "internal, exported, existing or kms";
        key_type: Str, "rsa, ec or ed25519", default = "rsa";
        key_bits: Int, "key size";
        key_name: Str, "name of the new key";
        key_ref: Str, "existing key to use", default = "default";
        issuer_name: Str, "name of the new issuer";
        max_path_length: Int, "path length constraint; -1 for none", default = -1;
        permitted_dns_domains: List, "name constraints: permitted DNS domains";
        excluded_dns_domains: List, "name constraints: excluded DNS domains";
        add_basic_constraints: Bool, "ask for CA basic constraints in the CSR";
        managed_key_name: Str, "managed keys (not supported)";
        managed_key_id: Str, "managed keys (not supported)";
    }
}

tresor_sdk::input! {
    /// The issuer that signs, on the `issuer/:issuer_ref/...` signing forms only (part of the
    /// URL, where ACLs see it).
    pub(crate) struct IssuerInUrl {
        issuer_ref: Str, "issuer that signs (part of the URL)";
    }
}

tresor_sdk::input! {
    /// `root/sign-intermediate`, `issuer/:issuer_ref/sign-intermediate` (after the subject).
    pub(crate) struct SignIntermediateInput {
        csr: Str, "PEM CSR of the intermediate", required;
        use_csr_values: Bool, "take subject and SANs from the CSR";
        max_path_length: Int, "path length constraint", default = -1;
        permitted_dns_domains: List, "name constraints: permitted DNS domains";
        excluded_dns_domains: List, "name constraints: excluded DNS domains";
        skid: Str, "subject key identifier to use (hex)";
    }
}

tresor_sdk::input! {
    /// `root/sign-self-issued`, `issuer/:issuer_ref/sign-self-issued`.
    pub(crate) struct SelfIssuedInput {
        certificate: Str, "PEM of the self-issued CA certificate", required;
        require_matching_certificate_algorithms: Bool, "refuse a certificate whose key algorithm differs from the issuer's";
    }
}

tresor_sdk::input! {
    /// The issue and sign paths (after the subject): `role` is the URL's `{role}` where it
    /// has one.
    pub(crate) struct LeafInput {
        role: Str, "the role";
        csr: Str, "PEM CSR to sign";
        remove_roots_from_chain: Bool, "leave self-signed roots out of ca_chain";
        user_ids: List, "user ids";
        key_usage: List, "key usages (sign-verbatim)", default = ["DigitalSignature", "KeyAgreement", "KeyEncipherment"];
        ext_key_usage: List, "extended key usages (sign-verbatim)";
        ext_key_usage_oids: List, "extended key usage OIDs (sign-verbatim)";
    }
}

tresor_sdk::input! {
    /// The issuer a path reads or changes: the URL's `{issuer_ref}` (an id, a name or
    /// `default`).
    pub(crate) struct IssuerRef {
        issuer_ref: Str, "issuer reference";
    }
}

tresor_sdk::input! {
    /// `issuer/:issuer_ref` write and patch: only the settings sent change.
    pub(crate) struct IssuerSettings {
        issuer_name: OptStr, "issuer name";
        leaf_not_after_behavior: OptStr, "err, truncate or permit";
        usage: OptList, "read-only, issuing-certificates, crl-signing, ocsp-signing";
        manual_chain: OptList, "issuer ids of the chain";
        revocation_signature_algorithm: OptStr, "CRL signature algorithm";
        issuing_certificates: OptList, "AIA issuing certificate URLs";
        crl_distribution_points: OptList, "CRL distribution points";
        ocsp_servers: OptList, "OCSP servers";
        enable_aia_url_templating: OptBool, "AIA URL templating";
    }
}

tresor_sdk::input! {
    /// `root/replace`: a `default` not sent is the reference "next", as in Vault (an issuer
    /// of that name, else a 400).
    pub(crate) struct ReplaceRootInput {
        default: OptStr, "the new default issuer", default = "next";
    }
}

tresor_sdk::input! {
    /// `config/issuers`: only the settings sent change.
    pub(crate) struct ConfigIssuersInput {
        default: OptStr, "default issuer reference";
        default_follows_latest_issuer: OptBool, "new issuers become default";
    }
}

tresor_sdk::input! {
    /// `intermediate/set-signed`.
    pub(crate) struct SetSignedInput {
        certificate: Str, "the signed intermediate (and chain), PEM", required;
    }
}

tresor_sdk::input! {
    /// `config/ca`.
    pub(crate) struct CaBundleInput {
        pem_bundle: Str, "PEM bundle: key, certificate, chain", required;
    }
}

tresor_sdk::input! {
    /// `issuers/import/bundle`.
    pub(crate) struct ImportBundleInput {
        pem_bundle: Str, "PEM bundle: keys and CA certificates", required;
    }
}

tresor_sdk::input! {
    /// `issuers/import/cert`.
    pub(crate) struct ImportCertInput {
        pem_bundle: Str, "PEM CA certificates", required;
    }
}

tresor_sdk::input! {
    /// `keys/import`.
    pub(crate) struct KeyImportInput {
        pem_bundle: Str, "PEM private key", required;
        key_name: Str, "name of the key";
    }
}

tresor_sdk::input! {
    /// The key `key/:key_ref` acts on: the URL's `{key_ref}` (an id, a name or `default`).
    pub(crate) struct KeyRef {
        key_ref: Str, "key reference";
    }
}

tresor_sdk::input! {
    /// `key/:key_ref` write: its new name.
    pub(crate) struct KeyNameInput {
        key_name: Str, "name of the key";
    }
}

tresor_sdk::input! {
    /// `config/keys`.
    pub(crate) struct ConfigKeysInput {
        default: Str, "default key reference";
    }
}

tresor_sdk::input! {
    /// `config/urls`: only the settings sent change.
    pub(crate) struct UrlsInput {
        issuing_certificates: OptList, "AIA issuing certificate URLs";
        crl_distribution_points: OptList, "CRL distribution point URLs";
        ocsp_servers: OptList, "OCSP server URLs";
        enable_templating: OptBool, "URL templating";
    }
}

tresor_sdk::input! {
    /// `config/cluster`: only the settings sent change.
    pub(crate) struct ClusterInput {
        path: OptStr, "this mount's URL as clients reach it";
        aia_path: OptStr, "this mount's URL for AIA information";
    }
}

tresor_sdk::input! {
    /// `config/acme`: accepted so clients can write it; only `enabled` is read (and refused).
    pub(crate) struct AcmeInput {
        enabled: Bool, "ACME (not supported; always false)";
        allowed_issuers: List, "ACME issuers (not supported)";
        allowed_roles: List, "ACME roles (not supported)";
        default_directory_policy: Str, "ACME directory policy (not supported)";
        eab_policy: Str, "ACME EAB policy (not supported)";
        dns_resolver: Str, "ACME DNS resolver (not supported)";
    }
}

tresor_sdk::input! {
    /// `config/crl`: only the settings sent change.
    pub(crate) struct CrlConfigInput {
        expiry: OptDuration, "CRL lifetime";
        disable: OptBool, "serve empty CRLs";
        ocsp_disable: OptBool, "turn the OCSP responder off";
        ocsp_expiry: OptDuration, "OCSP response lifetime";
        auto_rebuild: OptBool, "rebuild CRLs near expiry instead of on revoke";
        auto_rebuild_grace_period: OptDuration, "rebuild this long before expiry";
        enable_delta: OptBool, "build delta CRLs";
        delta_rebuild_interval: OptDuration, "delta CRL rebuild interval";
        cross_cluster_revocation: Bool, "not supported";
        unified_crl: Bool, "not supported";
        unified_crl_on_existing_paths: Bool, "not supported";
    }
}

tresor_sdk::input! {
    /// `tidy`: a tidy run; what is not sent takes its default.
    pub(crate) struct TidyInput {
        tidy_cert_store: Bool, "remove expired certificates";
        tidy_revoked_certs: Bool, "remove expired revoked certificates";
        tidy_revoked_cert_issuer_associations: Bool, "check revocation issuers";
        tidy_expired_issuers: Bool, "remove expired issuers (not supported)";
        safety_buffer: Duration, "keep certificates this long past expiry", default = 72 * 3600;
        issuer_safety_buffer: Duration, "issuer safety buffer", default = 365 * 24 * 3600;
        pause_duration: Str, "pause between certificates";
        enabled: Bool, "auto-tidy enabled";
        interval_duration: Duration, "auto-tidy interval", default = 12 * 3600;
    }
}

tresor_sdk::input! {
    /// `config/auto-tidy`: the same fields as `tidy`; only the settings sent change.
    pub(crate) struct AutoTidyInput {
        tidy_cert_store: OptBool, "remove expired certificates";
        tidy_revoked_certs: OptBool, "remove expired revoked certificates";
        tidy_revoked_cert_issuer_associations: OptBool, "check revocation issuers";
        tidy_expired_issuers: OptBool, "remove expired issuers (not supported)";
        safety_buffer: OptDuration, "keep certificates this long past expiry", default = 72 * 3600;
        issuer_safety_buffer: OptDuration, "issuer safety buffer", default = 365 * 24 * 3600;
        pause_duration: OptStr, "pause between certificates";
        enabled: OptBool, "auto-tidy enabled";
        interval_duration: OptDuration, "auto-tidy interval", default = 12 * 3600;
    }
}

tresor_sdk::input! {
    /// `revoke`, `revoke-with-key`: the certificate, by serial or PEM.
    pub(crate) struct RevokeInput {
        serial_number: Str, "serial of the certificate";
        certificate: Str, "PEM of the certificate";
    }
}

tresor_sdk::input! {
    /// `revoke-with-key`: the proof of possession.
    pub(crate) struct RevokeKeyInput {
        private_key: Str, "PEM of its private key";
    }
}

tresor_sdk::input! {
    /// `LIST certs`, `LIST certs/revoked`: one page.
    pub(crate) struct PageInput {
        after: Str, "list serials after this one";
        limit: Int, "at most this many serials";
    }
}

tresor_sdk::input! {
    /// The rest of a CRL URL: `crl/...`, `issuer/:issuer_ref/crl/...`.
    pub(crate) struct CrlRest {
        rest: Str, "which CRL and form: empty, der, pem, delta, delta/der or delta/pem";
    }
}

tresor_sdk::input! {
    /// `cert/:serial[/...]`.
    pub(crate) struct CertPathInput {
        serial: Str, "serial of the certificate (colon or hyphen form), or ca, ca_chain, crl or delta-crl";
        rest: Str, "raw or raw/pem for the certificate itself";
    }
}

tresor_sdk::input! {
    /// `ocsp/:request` (GET).
    pub(crate) struct OcspRequestInput {
        request: Str, "the base64 DER OCSP request";
    }
}

tresor_sdk::input! {
    /// `roles/:name`: the role's name (the URL's `{name}`).
    pub(crate) struct RoleName {
        name: Str, "name of the role";
    }
}
