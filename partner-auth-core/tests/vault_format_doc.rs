//! An independent check of `docs/vault-format.md`: the known-answer vectors
//! are read from the document itself and opened with nothing but the
//! layout it describes and the bare `aes-gcm` crate. None of the library's
//! envelope code is used, so a change to either the document or the code
//! that makes them disagree fails here or in the envelope's own tests.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

const DOC: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../docs/vault-format.md"
));

fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex length: {text}");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// The lines of the document from the heading `title` to the next heading
/// of the same or a higher level.
fn section(title: &str) -> Vec<&'static str> {
    let level = title.chars().take_while(|c| *c == '#').count();
    let mut lines = DOC.lines().skip_while(|l| l.trim() != title);
    assert!(
        lines.next().is_some(),
        "no section {title:?} in the document"
    );
    lines
        .take_while(|l| {
            let hashes = l.chars().take_while(|c| *c == '#').count();
            hashes == 0 || hashes > level
        })
        .collect()
}

/// The first back-quoted value in the table row whose first cell is `name`.
fn table_value(lines: &[&'static str], name: &str) -> &'static str {
    let row: &'static str = lines
        .iter()
        .copied()
        .find(|l| l.split('|').nth(1).is_some_and(|cell| cell.trim() == name))
        .unwrap_or_else(|| panic!("no table row {name:?}"));
    let cell = row.split('|').nth(2).expect("value cell");
    let start = cell.find('`').expect("opening back quote") + 1;
    let len = cell[start..].find('`').expect("closing back quote");
    &cell[start..start + len]
}

/// The hex labelled `label` in the first fenced block that has it: the line
/// `label  HEX`, and any indented lines right after it that continue it.
fn fenced_hex(lines: &[&str], label: &str) -> Vec<u8> {
    let mut out = String::new();
    let mut inside = false;
    let mut taking = false;
    for line in lines {
        if line.trim_start().starts_with("```") {
            if inside && !out.is_empty() {
                break;
            }
            inside = !inside;
            continue;
        }
        if !inside {
            continue;
        }
        let labelled = line
            .strip_prefix(label)
            .filter(|rest| rest.starts_with(' '));
        if let Some(rest) = labelled {
            taking = true;
            let rest = rest.trim();
            // Skip a note such as "(67 bytes)".
            let rest = match rest.strip_prefix('(') {
                Some(r) => r.split_once(')').map_or("", |(_, after)| after).trim(),
                None => rest,
            };
            out.push_str(rest);
        } else if taking && line.starts_with(' ') {
            out.push_str(line.trim());
        } else {
            taking = false;
        }
    }
    assert!(!out.is_empty(), "no hex labelled {label:?}");
    unhex(&out)
}

/// The unlabelled hex block that follows the line containing `after`.
fn block_after(lines: &[&str], after: &str) -> Vec<u8> {
    let start = lines
        .iter()
        .position(|l| l.contains(after))
        .unwrap_or_else(|| panic!("no line with {after:?}"));
    let mut hex = String::new();
    let mut inside = false;
    for line in &lines[start + 1..] {
        if line.trim_start().starts_with("```") {
            if inside {
                break;
            }
            inside = true;
            continue;
        }
        if inside {
            hex.push_str(line.trim());
        }
    }
    unhex(&hex)
}

fn field(bytes: &[u8]) -> Vec<u8> {
    let mut out = u16::try_from(bytes.len())
        .expect("short field")
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(bytes);
    out
}

fn open(key: &[u8], nonce: &[u8], sealed: &[u8], aad: &[u8]) -> Vec<u8> {
    Aes256Gcm::new_from_slice(key)
        .expect("32-byte key")
        .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad })
        .expect("the documented vector opens")
}

#[test]
fn record_vector_opens_with_the_documented_layout_only() {
    let kat = section("## Known-answer vector");
    let kek = unhex(table_value(&kat, "KEK"));
    let partner = table_value(&kat, "partner").as_bytes();
    let kind = table_value(&kat, "kind").as_bytes();
    let credential = unhex(&table_value(&kat, "credential id").replace('-', ""));
    let plaintext = table_value(&kat, "plaintext").as_bytes();
    let envelope = block_after(&kat, "The envelope (");

    // Byte layout: version, id length, id, wrap nonce, wrapped DEK, payload
    // nonce, payload length, payload; nothing after it.
    assert_eq!(envelope[0], 0x01, "format version");
    let n = usize::from(envelope[1]);
    assert!((1..=32).contains(&n));
    let kek_id = &envelope[2..2 + n];
    assert_eq!(kek_id, table_value(&kat, "KEK id").as_bytes());
    let wrap_nonce = &envelope[2 + n..14 + n];
    let wrapped_dek = &envelope[14 + n..62 + n];
    let payload_nonce = &envelope[62 + n..74 + n];
    let m = usize::try_from(u32::from_be_bytes(
        envelope[74 + n..78 + n].try_into().unwrap(),
    ))
    .unwrap();
    let payload = &envelope[78 + n..];
    assert_eq!(
        payload.len(),
        m,
        "the envelope ends exactly after the payload"
    );
    assert_eq!(wrap_nonce, unhex(table_value(&kat, "wrap nonce")));
    assert_eq!(payload_nonce, unhex(table_value(&kat, "payload nonce")));

    // Associated data: version, purpose, then length-prefixed fields.
    let tail = [field(partner), field(kind), field(&credential)].concat();
    let wrap_ad = [vec![0x01, 0x01], field(kek_id), tail.clone()].concat();
    let payload_ad = [vec![0x01, 0x02], tail].concat();
    assert_eq!(wrap_ad, fenced_hex(&kat, "wrap"));
    assert_eq!(payload_ad, fenced_hex(&kat, "payload"));
    assert_eq!(wrapped_dek, fenced_hex(&kat, "wrapped DEK"));

    let dek = open(&kek, wrap_nonce, wrapped_dek, &wrap_ad);
    assert_eq!(dek, unhex(table_value(&kat, "DEK")));
    assert_eq!(open(&dek, payload_nonce, payload, &payload_ad), plaintext);
}

#[test]
fn audit_key_vector_opens_with_the_documented_layout_only() {
    let record_kat = section("## Known-answer vector");
    let kek = unhex(table_value(&record_kat, "KEK"));
    let wrapped_keys = section("## Wrapped system keys");
    let blob = fenced_hex(&wrapped_keys, "blob");

    // version || n || KEK id || nonce (12) || wrapped key (32 + 16 tag)
    assert_eq!(blob[0], 0x01);
    let n = usize::from(blob[1]);
    let kek_id = &blob[2..2 + n];
    let nonce = &blob[2 + n..14 + n];
    let wrapped = &blob[14 + n..];
    assert_eq!(wrapped.len(), 48);
    assert_eq!(nonce, unhex(table_value(&wrapped_keys, "nonce")));
    assert_eq!(wrapped, fenced_hex(&wrapped_keys, "wrapped key"));

    let name = table_value(&wrapped_keys, "key name").as_bytes();
    let aad = [vec![0x01, 0x03], field(kek_id), field(name)].concat();
    assert_eq!(aad, fenced_hex(&wrapped_keys, "associated data"));
    assert_eq!(
        open(&kek, nonce, wrapped, &aad),
        unhex(table_value(&wrapped_keys, "audit key"))
    );
}
