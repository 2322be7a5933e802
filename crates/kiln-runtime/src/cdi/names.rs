//! Fully-qualified CDI device names (`vendor.com/class=name`) and the rules for their parts.

use super::CdiError;

/// Splits `vendor.com/class=name` into (`vendor.com/class`, `name`), validating each part.
pub(super) fn parse_qualified_name(name: &str) -> Result<(&str, &str), CdiError> {
    let invalid = |reason: &str| CdiError::InvalidName {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    let Some((kind, dev)) = name.split_once('=') else {
        return Err(invalid(
            "not a fully-qualified cdi device name (expected vendor.com/class=name)",
        ));
    };
    validate_kind(kind, &|r| invalid(&r))?;
    validate_device_name(dev, &|r| invalid(&r))?;
    Ok((kind, dev))
}

/// Makes the error of a failed check from its reason (the caller knows the name or file).
pub(super) type Fail<'a> = &'a dyn Fn(String) -> CdiError;

pub(super) fn validate_kind(kind: &str, fail: Fail<'_>) -> Result<(), CdiError> {
    let Some((vendor, class)) = kind.split_once('/') else {
        return Err(fail(format!(
            "kind `{kind}` is not of the form vendor/class"
        )));
    };
    validate_vendor(vendor, fail)?;
    validate_class(class, fail)
}

fn validate_vendor(vendor: &str, fail: Fail<'_>) -> Result<(), CdiError> {
    validate_part("vendor", vendor, fail)?;
    if vendor.contains("..") {
        return Err(fail(format!("vendor `{vendor}` contains an empty label")));
    }
    Ok(())
}

fn validate_class(class: &str, fail: Fail<'_>) -> Result<(), CdiError> {
    validate_part("class", class, fail)
}

/// The rules vendor and class share: a letter first, a letter or digit last, and only
/// letters, digits, `-`, `_` and `.`; `what` names the part in the reason.
fn validate_part(what: &str, part: &str, fail: Fail<'_>) -> Result<(), CdiError> {
    let first = part.chars().next();
    let last = part.chars().last();
    if !first.is_some_and(|c| c.is_ascii_alphabetic()) {
        return Err(fail(format!("{what} `{part}` must start with a letter")));
    }
    if !last.is_some_and(|c| c.is_ascii_alphanumeric()) {
        return Err(fail(format!(
            "{what} `{part}` must end with a letter or a digit"
        )));
    }
    if let Some(c) = part
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(fail(format!(
            "{what} `{part}` contains invalid character {c:?}"
        )));
    }
    Ok(())
}

pub(super) fn validate_device_name(name: &str, fail: Fail<'_>) -> Result<(), CdiError> {
    let first = name.chars().next();
    let last = name.chars().last();
    if !first.is_some_and(|c| c.is_ascii_alphanumeric()) {
        return Err(fail(format!(
            "device name `{name}` must start with a letter or a digit"
        )));
    }
    if !last.is_some_and(|c| c.is_ascii_alphanumeric()) {
        return Err(fail(format!(
            "device name `{name}` must end with a letter or a digit"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')))
    {
        return Err(fail(format!(
            "device name `{name}` contains invalid character {c:?}"
        )));
    }
    Ok(())
}
