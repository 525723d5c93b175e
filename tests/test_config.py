import pytest

from pytest_harnessbench.config import OPTIONS, ConfigError, build


def make(**overrides):
    return build(lambda opt: overrides.get(opt.name, opt.default))


def test_defaults():
    cfg = make()
    assert [m.text for m in cfg.models] == ["oracle"]
    assert [m.label for m in cfg.multipliers] == ["1x"]
    assert (cfg.samples, cfg.backend, cfg.oom_as, cfg.backend_options.enforcement) == (1, "local", "infra", "cgroup")
    assert cfg.scale == {"cpu", "memory"}


def test_full_matrix():
    cfg = make(models="oracle:lean, oracle:heavy,nop,openai:gpt-5.1", multipliers="1,1.5,3x,uncapped", samples="3")
    assert [m.kind for m in cfg.models] == ["oracle", "oracle", "nop", "provider"]
    assert [m.label for m in cfg.multipliers] == ["1x", "1.5x", "3x", "uncapped"]
    assert cfg.samples == 3


@pytest.mark.parametrize("name, value, match", [
    ("multipliers", "0.5", "'0.5'.*below 1"),
    ("multipliers", "abc", "'abc'.*1, 1.5, 3x"),
    ("multipliers", "3y", "'3y'"),
    ("multipliers", "", "empty entry"),
    ("multipliers", "1,,3", "empty entry"),
    ("multipliers", "3,3x", "'3x' repeats '3'"),
    ("models", "", "empty entry"),
    ("models", "gpt4", "unknown built-in model 'gpt4'.*oracle"),
    ("models", "oracle:", "oracle variant is empty"),
    ("models", "nop,nop", "'nop' repeats"),
    ("backend", "podman", "'podman' is not one of: local, docker, kubernetes"),
    ("samples", "0", "must be ≥ 1"),
    ("samples", "two", "not a whole number"),
    ("scale", "cpu,disk", "'disk' is not one of"),
    ("oom_as", "ignored", "not one of: infra, failed"),
    ("enforcement", "seccomp", "not one of: cgroup, rlimit"),
    ("retry_infra", "-1", "--hb-retry-infra '-1' must be ≥ 0"),
    ("retry_infra", "twice", "--hb-retry-infra 'twice' is not a whole number"),
])
def test_bad_values_name_the_value_and_what_is_accepted(name, value, match):
    with pytest.raises(ConfigError, match=match):
        make(**{name: value})


@pytest.mark.parametrize("name, value, match", [
    ("k8s_namespace", "Bench_NS", "not a namespace name"),
    ("k8s_schedule_timeout", "0", "must be ≥ 0.1"),
    ("k8s_max_pods", "-1", "must be ≥ 0"),
])
def test_a_backend_parses_its_own_options(name, value, match):
    with pytest.raises(ConfigError, match=match):
        make(backend="kubernetes", **{name: value})
    make(**{name: value})  # another backend's options are not read: only the chosen backend's
    options = make(backend="kubernetes", k8s_namespace="bench", k8s_max_pods="3").backend_options
    assert (options.namespace, options.max_pods, options.schedule_timeout_s) == ("bench", 3, 300.0)


def test_every_option_has_an_ini_key_and_flag():
    assert all(opt.ini.startswith("hb_") for opt in OPTIONS)
    assert {opt.flag for opt in OPTIONS} >= {"--models", "--multipliers", "--samples", "--hb-backend",
                                             "--hb-scale", "--hb-out", "--hb-oom-as"}
    assert all(opt.flag in ("--models", "--multipliers", "--samples") or opt.flag.startswith("--hb-") for opt in OPTIONS)


def test_backends_come_from_one_registry_and_implement_the_whole_contract():
    from pytest_harnessbench.config import declared_options
    from pytest_harnessbench.sandbox import registry
    from pytest_harnessbench.sandbox.base import Backend

    declared = declared_options()
    backend_help = next(opt.help for opt in declared if opt.name == "backend")
    assert registry.names()[:3] == ("local", "docker", "kubernetes")
    for name in registry.names():
        cls = registry.load(name)
        assert issubclass(cls, Backend) and cls.name == name and name in backend_help
        assert all(opt in declared for opt in cls.options)
        for method in ("check", "provision", "describe", "reap"):
            assert getattr(cls, method) is not getattr(Backend, method), f"{name} lacks {method}"
