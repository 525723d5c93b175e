"""Secret redaction: which variables count, and replacement in nested data."""

import copy

from pytest_harnessbench.redact import Redactor, looks_secret

ENV = {
    "MY_API_KEY": "sk-test-1234567890",
    "github_token": "ghp_abcdefghijklmnop",
    "DB_PASSWORD": "hunter2hunter2",
    "DB_PASSWD": "passwd-value-123",
    "AWS_SECRET_ACCESS_KEY": "aws/secret/value+xyz",
    "GOOGLE_APPLICATION_CREDENTIALS_JSON": "{\"private\": \"creds-1234\"}",
    "HTTP_AUTH_HEADER": "Basic dXNlcjpwYXNz",
    "DEBUG_AUTH": "1",  # too short to redact: would turn every "1" into a marker
    "SHORT_TOKEN": "abc1234",  # 7 characters: under the threshold
    "HOME": "/root/some/long/path",  # not a secret name
    "PATH": "/usr/local/bin:/usr/bin",
}


def test_secret_names_are_matched_case_insensitively():
    assert all(looks_secret(n) for n in ["MY_API_KEY", "github_token", "Db_Password", "PASSWD", "x_credential",
                                         "OAUTH_X", "client_secret"])
    assert not any(looks_secret(n) for n in ["HOME", "PATH", "LANG", "USER", "PWD"])


def test_from_environ_takes_secret_values_of_eight_or_more_characters():
    redactor = Redactor.from_environ(ENV)
    assert redactor.names == sorted(["MY_API_KEY", "github_token", "DB_PASSWORD", "DB_PASSWD",
                                     "AWS_SECRET_ACCESS_KEY", "GOOGLE_APPLICATION_CREDENTIALS_JSON",
                                     "HTTP_AUTH_HEADER"])
    assert redactor.redact_text("home=/root/some/long/path debug=1 short=abc1234") == \
        "home=/root/some/long/path debug=1 short=abc1234"


def test_redact_replaces_secrets_in_nested_structures_without_mutating_them():
    redactor = Redactor.from_environ(ENV)
    data = {
        "messages": [{"role": "tool", "content": "token=sk-test-1234567890\nexit 0"}],
        "tool_calls": [{"args": {"command": "curl -H 'Authorization: Basic dXNlcjpwYXNz' x"},
                        "output": ("ghp_abcdefghijklmnop", 3, None, 1.5, True)}],
        "sk-test-1234567890": "a secret used as a key",
        "count": 7,
    }
    before = copy.deepcopy(data)
    out = redactor.redact(data)
    assert data == before  # pure: the input is untouched
    assert out["messages"][0]["content"] == "token=[REDACTED:MY_API_KEY]\nexit 0"
    assert out["tool_calls"][0]["args"]["command"] == "curl -H 'Authorization: [REDACTED:HTTP_AUTH_HEADER]' x"
    assert out["tool_calls"][0]["output"] == ("[REDACTED:github_token]", 3, None, 1.5, True)
    assert out["[REDACTED:MY_API_KEY]"] == "a secret used as a key"
    assert out["count"] == 7
    assert "sk-test-1234567890" not in repr(out)


def test_longer_secret_wins_over_one_it_contains_and_duplicates_get_a_stable_name():
    redactor = Redactor.from_environ({"INNER_KEY": "abcdefgh", "OUTER_KEY": "xx-abcdefgh-yy",
                                      "B_TOKEN": "same-value-1", "A_TOKEN": "same-value-1"})
    assert redactor.redact_text("xx-abcdefgh-yy and abcdefgh") == "[REDACTED:OUTER_KEY] and [REDACTED:INNER_KEY]"
    assert redactor.redact_text("same-value-1") == "[REDACTED:A_TOKEN]"


def test_regex_characters_in_secrets_are_literal():
    redactor = Redactor.from_environ({"WEIRD_SECRET": "a.b*c+d?(e)[f]"})
    assert redactor.redact_text("axbbbcd e a.b*c+d?(e)[f]") == "axbbbcd e [REDACTED:WEIRD_SECRET]"


def test_an_environment_without_secrets_changes_nothing():
    redactor = Redactor.from_environ({"HOME": "/root", "PATH": "/usr/bin:/bin"})
    data = {"a": ["/root", "/usr/bin"]}
    assert not redactor
    assert redactor.redact(data) is data
