"""The allowlist decision of opslab.egress: entries, address classes, and what a name resolves to."""

from __future__ import annotations

import pytest

from opslab.egress import classify_address, decide, name_allowed, parse_allowlist, parse_rule


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("8.8.8.8", "global"),
        ("2606:4700::1111", "global"),
        ("127.0.0.1", "loopback"),
        ("127.1.2.3", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("169.254.1.1", "link_local"),
        ("fe80::1", "link_local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("100.64.0.1", "shared"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
    ],
)
def test_addresses_are_classed_by_what_they_reach(address: str, kind: str) -> None:
    assert classify_address(address) == kind


@pytest.mark.parametrize(
    ("entry", "kind", "port"),
    [
        ("api.example.com", "name", None),
        ("API.Example.com.", "name", None),
        ("api.example.com:443", "name", 443),
        ("*.example.com", "suffix", None),
        ("10.0.0.0/8", "network", None),
        ("10.1.2.3", "network", None),
        ("10.1.2.3:8080", "network", 8080),
        ("192.168.0.0/16:5432", "network", 5432),
        ("::1", "network", None),
        ("[::1]:8080", "network", 8080),
        ("[fd00::/8]:443", "network", 443),
        ("bücher.example", "name", None),
    ],
)
def test_entries_parse_into_rules(entry: str, kind: str, port: int | None) -> None:
    rule = parse_rule(entry)
    assert (rule.kind, rule.port) == (kind, port)


@pytest.mark.parametrize(
    "entry",
    [
        "",
        " ",
        "a b",
        "*",
        "*.",
        "x:0",
        "x:65536",
        "x:http",
        "x:٤٤٣",
        "::1:80x",
        "[::1",
        "[::1]x",
        "a..b",
        "-" * 64,
    ],
)
def test_malformed_entries_are_refused_with_the_entry_named(entry: str) -> None:
    with pytest.raises(ValueError, match="expected|port|host name|IPv6|address"):
        parse_rule(entry)


def test_a_name_is_allowed_only_when_it_resolves_to_a_public_address() -> None:
    rules = parse_allowlist(["*.allowed.test", "api.example.com:443"])
    ok = decide(rules, "a.allowed.test", 80, ["93.184.216.34"])
    assert ok.allowed and ok.address == "93.184.216.34" and ok.address_class == "global"
    for address, kind in (
        ("127.0.0.1", "loopback"),
        ("10.0.0.7", "private"),
        ("169.254.169.254", "metadata"),
    ):
        refused = decide(rules, "a.allowed.test", 80, [address])
        assert not refused.allowed and refused.address == address and refused.address_class == kind
    assert not decide(rules, "allowed.test", 80, ["93.184.216.34"]).allowed  # *. is subdomains only
    assert not decide(rules, "api.example.com", 80, ["93.184.216.34"]).allowed  # the port is part of it
    assert decide(rules, "API.EXAMPLE.COM.", 443, ["93.184.216.34"]).allowed
    assert decide(rules, "a.allowed.test", 80, []).why == "does not resolve"


def test_the_first_acceptable_address_wins_and_a_private_one_needs_its_own_entry() -> None:
    rules = parse_allowlist(["*.allowed.test"])
    mixed = decide(rules, "x.allowed.test", 443, ["10.0.0.1", "93.184.216.34"])
    assert mixed.allowed and mixed.address == "93.184.216.34"
    explicit = parse_allowlist(["*.allowed.test", "10.0.0.0/8"])
    inside = decide(explicit, "x.allowed.test", 443, ["10.0.0.1"])
    assert inside.allowed and inside.address == "10.0.0.1" and "named in allowed_hosts" in inside.why
    assert not decide(
        parse_allowlist(["*.allowed.test", "10.0.0.0/8:22"]), "x.allowed.test", 443, ["10.0.0.1"]
    ).allowed


def test_an_address_literal_needs_an_entry_for_that_address() -> None:
    rules = parse_allowlist(["allowed.test", "127.0.0.1:8080", "[::1]"])
    assert name_allowed(rules, "127.0.0.1", 8080) and not name_allowed(rules, "127.0.0.1", 8081)
    assert decide(rules, "127.0.0.1", 8080, ["127.0.0.1"]).allowed
    assert decide(rules, "::1", 9, ["::1"]).allowed
    assert decide(rules, "[::1]", 9, ["::1"]).allowed
    assert not decide(rules, "127.0.0.2", 8080, ["127.0.0.2"]).allowed
    assert not decide(rules, "93.184.216.34", 80, ["93.184.216.34"]).allowed  # not named: a name rule
    mapped = parse_allowlist(["127.0.0.0/8"])
    assert decide(mapped, "::ffff:127.0.0.1", 80, ["::ffff:127.0.0.1"]).allowed  # the IPv4 it reaches


def test_names_compare_without_case_and_in_idna() -> None:
    rules = parse_allowlist(["bücher.example"])
    assert name_allowed(rules, "BÜCHER.example", 443)
    assert name_allowed(rules, "xn--bcher-kva.example", 443)
    assert not name_allowed(rules, "bucher.example", 443)
