//! Reading an `aws ecr describe-images` listing (`plan` and `explain`):
//! straight into images, never through a JSON tree, since a listing of a
//! million images is half a gigabyte of text.
//!
//! A large listing is read and parsed in two halves at once. The second
//! half starts at a guessed element boundary, and the guess is only
//! trusted if the first half, parsed from the start, stops exactly there.
//! Anything unexpected (a wrong guess, a bad entry, a `nextToken` after the
//! list) falls back to parsing the whole text in one go, which also
//! explains any error: either way, a listing gives the same images.

use std::fs::File;
use std::io::Read;

use serde::Deserialize;

use crate::model::Image;

/// Below this size a listing is parsed in one go: threads would cost more
/// than they save.
const SPLIT_AT: usize = 4 << 20;

/// How far past the middle the second half looks for an element to start
/// at: an image's entry is under a kilobyte unless it has hundreds of tags.
const BOUNDARY_SEARCH: usize = 1 << 20;

/// The images in the listing at `path`.
pub(super) fn read_images(path: &str) -> Result<Vec<Image>, String> {
    let text = read_file(path).map_err(|e| format!("cannot read images file {path}: {e}"))?;
    parse_images(text).map_err(|e| format!("{path}: {e}"))
}

/// The whole file; a large regular file in two halves at once, since on
/// this kind of machine most of a read's time is the kernel faulting in
/// fresh pages.
fn read_file(path: &str) -> std::io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    let metadata = file.metadata()?;
    let len = usize::try_from(metadata.len()).unwrap_or(0);
    if !metadata.is_file() || len < SPLIT_AT {
        let mut text = Vec::new();
        file.read_to_end(&mut text)?;
        return Ok(text);
    }
    read_halves(file, len)
}

#[cfg(unix)]
fn read_halves(mut file: File, len: usize) -> std::io::Result<Vec<u8>> {
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::FileExt;
    let mut text = vec![0; len];
    let (first, second) = text.split_at_mut(len / 2);
    let file_ref = &file;
    std::thread::scope(|s| {
        let reader = s.spawn(move || file_ref.read_exact_at(second, (len / 2) as u64));
        file_ref.read_exact_at(first, 0)?;
        reader
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("a reading thread stopped")))
    })?;
    // A file that grew since its size was read: the rest, as it comes.
    file.seek(SeekFrom::Start(len as u64))?;
    file.read_to_end(&mut text)?;
    Ok(text)
}

#[cfg(not(unix))]
fn read_halves(mut file: File, len: usize) -> std::io::Result<Vec<u8>> {
    let mut text = Vec::with_capacity(len);
    file.read_to_end(&mut text)?;
    Ok(text)
}

/// `aws ecr describe-images` output: `{"imageDetails": [...]}`, with any
/// other fields (`nextToken`) ignored.
#[derive(Deserialize)]
struct DescribeImages {
    #[serde(rename = "imageDetails")]
    image_details: Option<Vec<Image>>,
}

/// Reads `aws ecr describe-images` output, or a bare array of image
/// details, straight into images: in two halves at once when it is large
/// and shaped as the AWS CLI writes it, else in one go. The text is freed
/// before the halves are joined, so the two are never all held at once.
pub(super) fn parse_images(text: Vec<u8>) -> Result<Vec<Image>, String> {
    match (text.len() >= SPLIT_AT)
        .then(|| split_parse(&text))
        .flatten()
    {
        Some((mut images, rest)) => {
            drop(text);
            images.extend(rest);
            Ok(images)
        }
        None => parse_whole(&text),
    }
}

/// The listing parsed in one go. A bad entry is reported with its path, as
/// `imageDetails[3].imagePushedAt: ...`: the text is read again then,
/// tracking the path, which costs a third more than reading it without.
fn parse_whole(text: &[u8]) -> Result<Vec<Image>, String> {
    match text.trim_ascii_start().first() {
        Some(b'[') => serde_json::from_slice(text)
            .map_err(|_| explain_error::<Vec<Image>>(text, "imageDetails")),
        Some(b'{') => {
            let listing: DescribeImages = serde_json::from_slice(text)
                .map_err(|_| explain_error::<DescribeImages>(text, ""))?;
            listing.image_details.ok_or_else(|| {
                "expected an object with `imageDetails`, the output of `aws ecr describe-images`"
                    .to_owned()
            })
        }
        _ => match serde_json::from_slice::<serde_json::Value>(text) {
            Err(e) => Err(format!("not valid JSON: {e}")),
            Ok(_) => Err("expected the output of `aws ecr describe-images`".into()),
        },
    }
}

/// Why `text` does not read as a `T`, with the path to the bad value
/// (`prefix` before it: a bare array's `[3]` reads as `imageDetails[3]`).
fn explain_error<T: serde::de::DeserializeOwned>(text: &[u8], prefix: &str) -> String {
    let mut de = serde_json::Deserializer::from_slice(text);
    let error = match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(_) => match de.end() {
            Ok(()) => return "the listing could not be read".to_owned(),
            Err(e) => return format!("not valid JSON: {e}"),
        },
        Err(error) => error,
    };
    let path = error.path().to_string();
    let inner = error.into_inner();
    if inner.is_syntax() || inner.is_eof() {
        format!("not valid JSON: {inner}")
    } else if path == "." {
        inner.to_string()
    } else {
        format!("{prefix}{path}: {inner}")
    }
}

/// The images of a large listing, parsed in two halves at once; `None`
/// whenever that is not certain to give what `parse_whole` gives.
fn split_parse(text: &[u8]) -> Option<(Vec<Image>, Vec<Image>)> {
    let (first, wrapped) = first_element(text)?;
    let middle = element_start_after(text, text.len() / 2)?;
    if middle <= first {
        return None;
    }
    let (head, tail) = std::thread::scope(|s| {
        let tail = s.spawn(|| elements(text, middle, None));
        let head = elements(text, first, Some(middle));
        (head, tail.join().ok().flatten())
    });
    let (images, stop) = head?;
    let (rest, end) = tail?;
    (stop == middle && only_closing(&text[end..], wrapped)).then_some((images, rest))
}

/// Where the first element of the listing's array starts, and whether the
/// array is wrapped in `{"imageDetails": ...}`. Only the shapes the AWS CLI
/// writes: `imageDetails` as the first field, and a non-empty array.
fn first_element(text: &[u8]) -> Option<(usize, bool)> {
    let mut at = skip_space(text, 0);
    let wrapped = match text.get(at)? {
        b'[' => false,
        b'{' => {
            at = skip_space(text, at + 1);
            let key = b"\"imageDetails\"";
            if !text[at..].starts_with(key) {
                return None;
            }
            at = skip_space(text, at + key.len());
            if text.get(at) != Some(&b':') {
                return None;
            }
            at = skip_space(text, at + 1);
            if text.get(at) != Some(&b'[') {
                return None;
            }
            true
        }
        _ => return None,
    };
    at = skip_space(text, at + 1);
    (text.get(at) == Some(&b'{')).then_some((at, wrapped))
}

/// A guess at where an element starts at or after `from`: a `{` after a
/// `,` after a `}`, whitespace aside. It may be inside a string; the first
/// half's parse checks it.
fn element_start_after(text: &[u8], from: usize) -> Option<usize> {
    let end = text.len().min(from.saturating_add(BOUNDARY_SEARCH));
    (from..end).find(|&at| {
        text[at] == b'{'
            && last_non_space(&text[..at]).is_some_and(|(comma, b)| {
                b == b',' && last_non_space(&text[..comma]).is_some_and(|(_, b)| b == b'}')
            })
    })
}

fn last_non_space(text: &[u8]) -> Option<(usize, u8)> {
    text.iter()
        .rposition(|&b| !is_space(b))
        .map(|at| (at, text[at]))
}

/// Parses the array's elements from `at` (an element's start): up to
/// `stop`, returning where it stopped, which must be exactly `stop`; or,
/// without `stop`, through the array's `]`, returning the position after
/// it. `None` on anything else.
fn elements(text: &[u8], mut at: usize, stop: Option<usize>) -> Option<(Vec<Image>, usize)> {
    let mut images = Vec::new();
    loop {
        match stop {
            Some(stop) if at == stop => return Some((images, at)),
            Some(stop) if at > stop => return None,
            _ => {}
        }
        let mut stream = serde_json::Deserializer::from_slice(&text[at..]).into_iter::<Image>();
        images.push(stream.next()?.ok()?);
        at = skip_space(text, at + stream.byte_offset());
        match text.get(at)? {
            b',' => at = skip_space(text, at + 1),
            b']' if stop.is_none() => return Some((images, at + 1)),
            _ => return None,
        }
    }
}

/// Whether what follows the array is only its closing: `}` if it was
/// wrapped, and whitespace.
fn only_closing(rest: &[u8], wrapped: bool) -> bool {
    let at = skip_space(rest, 0);
    let at = if wrapped && rest.get(at) == Some(&b'}') {
        skip_space(rest, at + 1)
    } else if wrapped {
        return false;
    } else {
        at
    };
    at == rest.len()
}

fn skip_space(text: &[u8], at: usize) -> usize {
    text[at.min(text.len())..]
        .iter()
        .position(|&b| !is_space(b))
        .map_or(text.len(), |n| at + n)
}

/// JSON's whitespace, which is not all of ASCII's (no form feed).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\t' | b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: usize, tag: &str) -> serde_json::Value {
        serde_json::json!({
            "registryId": "123456789012",
            "repositoryName": "app",
            "imageDigest": format!("sha256:{i:064x}"),
            "imageTags": [tag, format!("sha-{i:x}")],
            "imageSizeInBytes": 1000 + i,
            "imagePushedAt": format!("2026-01-01T00:{:02}:{:02}+00:00", i / 60 % 60, i % 60),
        })
    }

    fn listing(n: usize, tag: impl Fn(usize) -> String) -> Vec<serde_json::Value> {
        (0..n).map(|i| entry(i, &tag(i))).collect()
    }

    fn wrapped(entries: &[serde_json::Value]) -> String {
        serde_json::to_string_pretty(&serde_json::json!({ "imageDetails": entries })).unwrap()
    }

    fn bare(entries: &[serde_json::Value]) -> String {
        serde_json::to_string(entries).unwrap()
    }

    /// The split parse gives exactly what the whole parse gives, or
    /// declines (`None`) as `split` says; `parse_images` agrees either way.
    fn check(name: &str, text: &str, split: bool) {
        let whole = parse_whole(text.as_bytes());
        let halves = split_parse(text.as_bytes());
        assert_eq!(halves.is_some(), split, "{name}: split or not");
        if let Some((mut images, rest)) = halves {
            images.extend(rest);
            assert_eq!(Ok(images), whole.clone(), "{name}: same images");
        }
        assert_eq!(
            parse_images(text.as_bytes().to_vec()),
            whole,
            "{name}: parse_images"
        );
    }

    #[test]
    fn splits_only_where_the_whole_parse_agrees() {
        let plain = listing(200, |i| format!("v1.0.{i}"));
        let long = bare(&plain);
        // Every tag holds what looks like an element boundary, so the
        // guess at the middle lands inside a string.
        let tricky = listing(200, |i| format!("x}}, {{\"imageDigest\": \"{i}\"}}, {{"));
        let cases: Vec<(&str, String, bool)> = vec![
            ("the AWS CLI's shape", wrapped(&plain), true),
            ("a bare array, compact", long.clone(), true),
            ("boundaries inside strings", wrapped(&tricky), false),
            (
                "a next token after the list",
                {
                    let mut text = wrapped(&plain);
                    text.truncate(text.trim_end().len() - 1);
                    text + ", \"nextToken\": \"abc\"}"
                },
                false,
            ),
            (
                "another field first",
                format!("{{\"nextToken\": null, {}", &wrapped(&plain)[1..]),
                false,
            ),
            ("trailing text", long.clone() + " x", false),
            (
                "a form feed between entries",
                long.replace("},{", "},\u{c}{"),
                false,
            ),
            (
                "a bad entry in the second half",
                long.replacen("2026-01-01T00:03:10", "not a time", 1),
                false,
            ),
            ("an empty list", "{\"imageDetails\": []}".to_owned(), false),
            ("an unclosed list", long[..long.len() - 1].to_owned(), false),
            (
                "a trailing comma",
                format!("{},]", &long[..long.len() - 1]),
                false,
            ),
        ];
        for (name, text, split) in cases {
            check(name, &text, split);
        }
    }

    #[test]
    fn a_large_file_is_read_whole() {
        let text = bare(&listing(20_000, |i| format!("v1.0.{i}")));
        assert!(text.len() >= SPLIT_AT, "{} bytes", text.len());
        let path = std::env::temp_dir().join(format!("ecr-gc-listing-{}.json", std::process::id()));
        std::fs::write(&path, &text).unwrap();
        let images = read_images(path.to_str().unwrap());
        let _ = std::fs::remove_file(&path);
        let images = images.unwrap();
        assert_eq!(images, parse_whole(text.as_bytes()).unwrap());
        assert_eq!(images.len(), 20_000);
    }
}
