"""Tokens, authentication, the bind rule and the token bucket, without a server.

Every token here is generated per test; none is real.
"""

from __future__ import annotations

import secrets

import pytest
from pydantic import SecretStr

from cluster.security import (
    ENV_TOKEN,
    ENV_TOKEN_FILE,
    ENV_TOKENS,
    ApiToken,
    Authenticator,
    InsecureBindError,
    RateLimit,
    TokenBucketLimiter,
    TokenConfigError,
    authenticate,
    check_bind,
    check_token_strength,
    is_loopback,
    load_tokens,
)
from core.errors import ConfigError


def _tok() -> str:
    return secrets.token_urlsafe(32)


def test_single_env_token_is_named_default_and_never_printed():
    value = _tok()
    (token,) = load_tokens({ENV_TOKEN: value})
    assert token.name == "default"
    assert token.secret.get_secret_value() == value
    assert value not in repr(token) and value not in str(token)
    assert value not in token.model_dump_json()


def test_named_env_tokens_and_a_secret_file_combine(tmp_path):
    ops, ci, alice = _tok(), _tok(), secrets.token_hex(24)
    path = tmp_path / "tokens"
    path.write_text(f"# mounted from a Kubernetes Secret\nalice: {alice}\n\n")
    tokens = load_tokens({ENV_TOKENS: f"ops={ops}, ci={ci}", ENV_TOKEN_FILE: str(path)})
    assert {t.name: t.secret.get_secret_value() for t in tokens} == {
        "ops": ops, "ci": ci, "alice": alice,
    }  # fmt: skip


def test_a_file_with_one_bare_token_names_it_default(tmp_path):
    value = _tok()
    path = tmp_path / "token"
    path.write_text(value + "\n")
    (token,) = load_tokens({ENV_TOKEN_FILE: str(path)})
    assert (token.name, token.secret.get_secret_value()) == ("default", value)


def test_nothing_configured_means_no_tokens():
    assert load_tokens({}) == ()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({ENV_TOKENS: "ops"}, "entry 1 is not 'name=token'"),
        ({ENV_TOKENS: f"bad name={_tok()}"}, "must match"),
        ({ENV_TOKEN: "x", ENV_TOKENS: ""}, "too weak: 1 characters"),
    ],
)
def test_malformed_env_tokens_are_refused_with_the_rule(env, message):
    with pytest.raises(TokenConfigError, match=message):
        load_tokens(env)


def test_a_name_used_twice_or_one_token_under_two_names_is_refused():
    a = _tok()
    with pytest.raises(TokenConfigError, match="'default' is configured twice"):
        load_tokens({ENV_TOKEN: a, ENV_TOKENS: f"default={_tok()}"})
    with pytest.raises(TokenConfigError, match="'ops' and 'ci' are the same token"):
        load_tokens({ENV_TOKENS: f"ops={a},ci={a}"})


def test_a_malformed_file_line_is_named_by_number_not_content(tmp_path):
    secret_like = _tok()
    path = tmp_path / "tokens"
    path.write_text(f"ops: {_tok()}\n{secret_like} trailing\n")
    with pytest.raises(TokenConfigError, match="line 2 is not 'name: token'") as err:
        load_tokens({ENV_TOKEN_FILE: str(path)})
    assert secret_like not in str(err.value)


def test_an_unreadable_file_is_a_config_error(tmp_path):
    with pytest.raises(TokenConfigError, match="cannot read"):
        load_tokens({ENV_TOKEN_FILE: str(tmp_path / "missing")})


@pytest.mark.parametrize(
    ("weak", "rule"),
    [
        ("short-but-random-ish", "at least 32 are needed"),
        ("a" * 40, "distinct characters"),
        ("password1234567890password1234567890", "repeats a shorter pattern"),
        ("abcdefghijklmnopqrstuvwxyzabcdefgh", "runs of neighbouring characters"),
        ("0123456789abcdef0123456789abcdefX", "runs of neighbouring characters"),
        ("has some spaces in it and is long enough", "whitespace"),
    ],
)
def test_weak_tokens_are_refused_with_a_clear_rule_and_without_the_token(weak, rule):
    with pytest.raises(TokenConfigError, match=rule) as err:
        check_token_strength("ops", weak)
    assert weak not in str(err.value)
    assert "secrets.token_urlsafe" in str(err.value)


@pytest.mark.parametrize("make", [lambda: secrets.token_urlsafe(32), lambda: secrets.token_hex(16)])
def test_generated_tokens_pass_the_strength_check(make):
    """200 random tokens each. A hex token (32 draws from 16 characters) has 6 distinct
    characters or fewer with probability 1.8e-10 (occupancy: sum over d <= 6 of
    C(16, d) S(32, d) d! / 16^32) and 24 of 31 neighbouring pairs within one code point about
    3e-13 (binomial, p = 44/256 a pair), so its 200 draws cannot make this test flake."""
    for _ in range(200):
        check_token_strength("ops", make())


@pytest.mark.parametrize(
    ("token", "rule"),
    [
        ("0a5fkq0fak5q0kfa5q0qka5f0f5akq0a", "only 6 distinct characters"),  # 6 of 0a5fkq
        ("0a5fkq0fak5qw0kfa5q0qka5fw0f5akq", None),  # 7: w added, no neighbouring pair
        ("abcdefghijklmnopqrstuvwxy0K5z#Q9", "runs of neighbouring characters"),  # 24 of 31
        ("abcdefghijklmnopqrstuvwx0K5z#Q9m", None),  # 23 of 31 pairs are runs
    ],
)
def test_the_distinct_and_run_rules_at_their_edges(token, rule):
    """Counted by hand: the distinct characters, and the pairs a..y (24) or a..x (23)."""
    if rule is None:
        check_token_strength("ops", token)
    else:
        with pytest.raises(TokenConfigError, match=rule):
            check_token_strength("ops", token)


def test_authenticate_returns_the_matching_token_name():
    ops, ci = _tok(), _tok()
    tokens = [
        ApiToken(name="ops", secret=SecretStr(ops)),
        ApiToken(name="ci", secret=SecretStr(ci)),
    ]
    assert authenticate(f"Bearer {ci}", tokens) == "ci"
    assert authenticate(f"bearer   {ops} ", tokens) == "ops"
    assert authenticate(f"Bearer {ops}x", tokens) is None
    assert authenticate(f"Basic {ops}", tokens) is None
    assert authenticate(ops, tokens) is None
    assert authenticate("Bearer ", tokens) is None
    assert authenticate(None, tokens) is None


def test_authenticator_without_tokens_refuses_unless_anonymous_is_allowed():
    assert Authenticator([]).authenticate(None) is None
    assert Authenticator([], anonymous="insecure-local").authenticate(None) == "insecure-local"
    token = ApiToken(name="ops", secret=SecretStr(_tok()))
    assert Authenticator([token], anonymous="insecure-local").authenticate(None) is None


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST.", "::ffff:127.0.0.1"],
)
def test_loopback_hosts(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.1", "192.168.1.2", "example.com", ""])
def test_non_loopback_hosts(host):
    assert not is_loopback(host)


def test_check_bind_needs_a_token_unless_loopback_and_insecure_local():
    token = ApiToken(name="ops", secret=SecretStr(_tok()))
    check_bind("0.0.0.0", [token], insecure_local=False)
    check_bind("127.0.0.1", [], insecure_local=True)
    with pytest.raises(InsecureBindError, match="no API token configured"):
        check_bind("127.0.0.1", [], insecure_local=False)
    with pytest.raises(InsecureBindError, match=r"'0\.0\.0\.0' is not loopback"):
        check_bind("0.0.0.0", [], insecure_local=True)
    assert issubclass(InsecureBindError, ConfigError)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_a_burst_then_refills_at_the_rate():
    clock = _Clock()
    limiter = TokenBucketLimiter(RateLimit(rate=2.0, burst=3), clock)
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(0.5)
    assert limiter.acquire("b") == 0.0  # buckets are per client
    clock.now += 0.5
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0


def test_token_bucket_forgets_the_oldest_client_beyond_max_clients():
    clock = _Clock()
    limiter = TokenBucketLimiter(RateLimit(rate=1.0, burst=1, max_clients=2), clock)
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("b") == 0.0
    assert limiter.acquire("c") == 0.0  # "a" is forgotten
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("c") > 0


def test_rate_limit_settings_are_checked():
    with pytest.raises(ConfigError, match="rate > 0"):
        RateLimit(rate=0.0)
