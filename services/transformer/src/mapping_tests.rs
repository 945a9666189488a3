//! Every shipped mapping checked on its fixtures against the canonical schemas.

use std::path::{Path, PathBuf};

use switchboard_core::ErrorClass;
use switchboard_core::mapping::Mapping;

use crate::target::Target;

fn mappings_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../mappings")
}

fn catalog() -> switchboard_core::canonical::Catalog {
    let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    switchboard_core::canonical::Catalog::load(&schemas).unwrap()
}

#[test]
fn shopify_customer_maps_to_contact_fields() {
    let mapping = Mapping::load(&mappings_dir(), "shopify/customer-to-contact.v1").unwrap();
    let out = mapping
        .apply(r#"{"id": 706405506930370084, "email": "Bob@Biller.com", "first_name": "Bob", "last_name": "Biller", "phone": null}"#)
        .unwrap();
    assert_eq!(
        out,
        serde_json::json!({"email": "bob@biller.com", "first_name": "Bob", "last_name": "Biller", "phone": null})
    );
}

#[test]
fn a_broken_program_refuses_to_load_and_says_where() {
    let dir = tempfile_dir();
    std::fs::write(dir.join("bad.v1.jq"), "{ email: .email").unwrap();
    let err = Mapping::load(&dir, "bad.v1").err().unwrap();
    assert!(err.to_string().starts_with("mapping `bad.v1`"), "{err}");
}

#[test]
fn a_mapping_with_two_outputs_is_a_data_error() {
    let dir = tempfile_dir();
    std::fs::write(dir.join("two.v1.jq"), ".a, .b").unwrap();
    let mapping = Mapping::load(&dir, "two.v1").unwrap();
    assert_eq!(
        mapping.apply(r#"{"a":1,"b":2}"#).unwrap_err().class,
        ErrorClass::Data
    );
}

#[test]
fn the_shipped_mappings_pass_their_fixtures() {
    // Every shipped `<source>/<thing>-to-<entity>.v<N>.jq`, against `<entity>`'s newest
    // schema (and contact v1 for the v1 contact mappings, which flows may still pin).
    let mut checked = 0;
    for source in std::fs::read_dir(mappings_dir()).unwrap() {
        let source = source.unwrap().path();
        for file in std::fs::read_dir(&source).unwrap() {
            let file = file.unwrap().path();
            let Some(stem) = file
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .strip_suffix(".jq")
            else {
                continue;
            };
            let name = format!("{}/{stem}", source.file_name().unwrap().to_str().unwrap());
            let entity = stem
                .split("-to-")
                .nth(1)
                .unwrap()
                .split('.')
                .next()
                .unwrap();
            let mapping = Mapping::load(&mappings_dir(), &name).unwrap();
            let versions = if stem.ends_with(".v1") {
                vec![None, Some(1)]
            } else {
                vec![None]
            };
            for version in versions {
                let target = Target::load(&catalog(), entity, version).unwrap();
                mapping
                    .validate(&mappings_dir(), |out| target.check_output(out).map(|_| ()))
                    .unwrap_or_else(|e| panic!("{name} against {entity} {version:?}: {e}"));
            }
            checked += 1;
        }
    }
    assert!(checked >= 8, "found {checked} mappings");
    let v2 = Mapping::load(&mappings_dir(), "shopify/customer-to-contact.v2").unwrap();
    let fixture = mappings_dir().join("shopify/customer-to-contact.fixtures/update.json");
    let out = v2
        .apply(&std::fs::read_to_string(fixture).unwrap())
        .unwrap();
    assert_eq!(out["company"], "Biller & Co");
}

#[test]
fn pipedrive_persons_map_from_webhooks_and_polls() {
    let mapping = Mapping::load(&mappings_dir(), "pipedrive/person-to-contact.v1").unwrap();
    let fixture = |f: &str| {
        std::fs::read_to_string(
            mappings_dir()
                .join("pipedrive/person-to-contact.fixtures")
                .join(f),
        )
        .unwrap()
    };
    assert_eq!(
        mapping.apply(&fixture("webhook-create.json")).unwrap(),
        serde_json::json!({"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace", "phone": "+31 20 555 0100"})
    );
    assert_eq!(
        mapping.apply(&fixture("polled.json")).unwrap(),
        serde_json::json!({"email": "g@example.com", "first_name": "Grace", "last_name": null, "phone": null})
    );
    assert_eq!(
        mapping.apply(&fixture("webhook-delete.json")).unwrap(),
        serde_json::json!({"email": null, "first_name": null, "last_name": null, "phone": null})
    );
}

#[test]
fn a_mapping_writing_a_field_the_schema_lacks_refuses_to_start() {
    let dir = tempfile_dir();
    std::fs::write(dir.join("extra.v2.jq"), "{email: .email, colour: .colour}").unwrap();
    let target = Target::load(&catalog(), "contact", Some(1)).unwrap();
    let mapping = Mapping::load(&dir, "extra.v2").unwrap();
    let err = mapping
        .validate(&dir, |out| target.check_output(out).map(|_| ()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("has no fixtures"), "{err}");
    std::fs::create_dir_all(dir.join("extra.fixtures")).unwrap();
    std::fs::write(
        dir.join("extra.fixtures/one.json"),
        r#"{"email": "a@b", "colour": "red"}"#,
    )
    .unwrap();
    let err = mapping
        .validate(&dir, |out| target.check_output(out).map(|_| ()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("one.json") && err.contains("`colour`"),
        "{err}"
    );
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sb-mapping-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
