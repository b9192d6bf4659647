"""Fuzzing the loader: token soup and truncated real configs only ever give ConfigError."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hafast.config.grammar import all_keywords
from hafast.config.loader import load
from hafast.config.tokens import ConfigError

SAMPLES = Path("/usr/share/doc/keepalived/samples")
KEYWORDS = sorted(all_keywords())
WORDS = st.one_of(
    st.sampled_from(KEYWORDS),
    st.sampled_from(
        [
            "{",
            "}",
            "{",
            "}",
            "1",
            "0",
            "-1",
            "300",
            "0.5",
            "1e9",
            "nan",
            "10.0.0.1",
            "fe80::1",
            "10.0.0.1/24",
            "fwmark",
            "group",
            "on",
            "off",
            "reverse",
            "weight",
            "dev",
            '"quoted word"',
            "'x'",
            "!",
            "#",
            "@a",
            "$X=1",
            "$X",
            "~SEQ(i,1,1,3)",
            "include",
            "MASTER",
            "BACKUP",
            "TCP",
            "NAT",
            "DR",
            "640205b7b0fc66c1ea91c463fac6334d",
            "200-299",
        ]
    ),
    st.text(alphabet="abcxyz019._-:/", min_size=1, max_size=8),
)
LINES = st.lists(st.lists(WORDS, min_size=1, max_size=6).map(" ".join), max_size=40)


def _sample_texts() -> list[str]:
    if not SAMPLES.is_dir():
        return ["vrrp_instance V {\n interface lo\n virtual_router_id 1\n}\n"]
    return [p.read_text() for p in sorted(SAMPLES.glob("keepalived.conf.*"))]


def _check(path: Path, text: str) -> None:
    path.write_text(text)
    try:
        load(str(path), config_id="a")
    except ConfigError as exc:
        assert exc.diagnostics
        assert not any("internal loader error" in d.message for d in exc.diagnostics), exc


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=LINES)
def test_token_soup_only_config_error(tmp_path: Path, lines: list[str]) -> None:
    _check(tmp_path / "soup.conf", "\n".join(lines) + "\n")


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_truncated_samples_only_config_error(tmp_path: Path, data: st.DataObject) -> None:
    texts = _sample_texts()
    text = texts[data.draw(st.integers(0, len(texts) - 1))]
    cut = data.draw(st.integers(0, len(text)))
    _check(tmp_path / "cut.conf", text[:cut])


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_sample_with_a_word_replaced_only_config_error(tmp_path: Path, data: st.DataObject) -> None:
    texts = _sample_texts()
    words = texts[data.draw(st.integers(0, len(texts) - 1))].split(" ")
    i = data.draw(st.integers(0, len(words) - 1))
    words[i] = data.draw(WORDS)
    _check(tmp_path / "swap.conf", " ".join(words))
