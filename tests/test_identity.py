"""Identity: canonical JSON (RFC 8785), digests, spec_hash, dataset_version_id, run ids and acquisition ids.

The test vectors were worked out by hand: the JCS bytes are written below as literals, and their sha256 was taken
outside the code under test (`printf '...' | sha256sum`). Each vector test also recomputes the hash with hashlib
from those literal bytes, so that the expected hex visibly follows from the bytes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from kfm_gitops.identity import (
    ZERO_DIGEST,
    IdentityError,
    PartitionContent,
    VersionId,
    acquisition_id,
    canonical_json,
    check_digest,
    content_hash,
    dataset_version_id,
    digest_of,
    is_digest,
    parse_run_id,
    parse_version_id,
    run_id,
    spec_hash,
)

A64 = "a" * 64
B64 = "b" * 64
D_A = "sha256:" + A64
D_B = "sha256:" + B64
D_1 = "sha256:" + "1" * 64
D_2 = "sha256:" + "2" * 64
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # sha256 of b""


# --- canonical JSON ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"b": 1, "a": 2}, b'{"a":2,"b":1}'),
        ({"z": [3, {"y": True, "x": None}], "a": {"c": "d"}}, b'{"a":{"c":"d"},"z":[3,{"x":null,"y":true}]}'),
        ([], b"[]"),
        ({}, b"{}"),
        ({"a": [1, [2, [3, {}]]]}, b'{"a":[1,[2,[3,{}]]]}'),
        (("x", "y"), b'["x","y"]'),
        ({"k": False}, b'{"k":false}'),
        # numbers: ECMAScript Number.prototype.toString
        (1.5, b"1.5"),
        (1e21, b"1e+21"),
        (1e20, b"100000000000000000000"),
        (1.0, b"1"),
        (-0.0, b"0"),
        (0.000001, b"0.000001"),
        (1e-7, b"1e-7"),
        (0.1 + 0.2, b"0.30000000000000004"),
        (-12, b"-12"),
        (2**53 - 1, b"9007199254740991"),
        (-(2**53 - 1), b"-9007199254740991"),
        # strings: UTF-8, only quote, backslash and controls escaped, controls in lowercase hex
        ("\u00e9", b'"\xc3\xa9"'),
        ("\u20ac", b'"\xe2\x82\xac"'),
        ("\U0001f600", b'"\xf0\x9f\x98\x80"'),
        ("\u2028", b'"\xe2\x80\xa8"'),
        ("/", b'"/"'),
        ('"\\', b'"\\"\\\\"'),
        ("\n\t\b\f\r", b'"\\n\\t\\b\\f\\r"'),
        ("\x00\x1f", b'"\\u0000\\u001f"'),
        ("\x7f", b'"\x7f"'),
    ],
)
def test_canonical_json_worked_examples(obj: Any, expected: bytes) -> None:
    assert canonical_json(obj) == expected


def test_canonical_json_sorts_keys_by_utf16_code_units() -> None:
    """RFC 8785 section 3.2.3: U+1F600 (surrogates D83D DE00) sorts before U+FB33 although its code point is larger."""
    obj = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    assert canonical_json(obj) == (
        b'{"\\r":"Carriage Return","1":"One","\xc2\x80":"Control","\xc3\xb6":"Latin Small Letter O With Diaeresis",'
        b'"\xe2\x82\xac":"Euro Sign","\xf0\x9f\x98\x80":"Emoji: Grinning Face",'
        b'"\xef\xac\xb3":"Hebrew Letter Dalet With Dagesh"}'
    )


def test_canonical_json_rfc8785_section_3_2_2_example() -> None:
    rfc_input = (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        b'{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        b'"string":"\xe2\x82\xac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical_json(json.loads(rfc_input)) == expected


@pytest.mark.parametrize(
    "obj",
    [
        float("nan"),
        float("inf"),
        float("-inf"),
        {"a": [1, {"b": float("nan")}]},
        2**53,
        2**53 + 1,
        -(2**53),
        10**21,
        [1, 2, 2**64],
    ],
)
def test_canonical_json_refuses_numbers_outside_i_json(obj: Any) -> None:
    with pytest.raises(IdentityError):
        canonical_json(obj)


@pytest.mark.parametrize("obj", [{1: "a"}, {"a": {1, 2}}, {"a": b"bytes"}, object()])
def test_canonical_json_refuses_what_json_cannot_hold(obj: Any) -> None:
    with pytest.raises(IdentityError):
        canonical_json(obj)


def test_digest_of_is_sha256_of_the_canonical_bytes() -> None:
    assert digest_of({"b": [1, 2], "a": "x"}) == "sha256:" + hashlib.sha256(b'{"a":"x","b":[1,2]}').hexdigest()
    assert digest_of("") == "sha256:" + hashlib.sha256(b'""').hexdigest()


# --- digests ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [D_A, "sha256:" + EMPTY_SHA256, "sha256:" + "0" * 63 + "1"])
def test_check_digest_accepts_well_formed_digests(value: str) -> None:
    assert check_digest(value) == value
    assert is_digest(value)


@pytest.mark.parametrize(
    "value",
    [
        ZERO_DIGEST,
        "sha256:" + "0" * 64,
        "sha256:" + A64.upper(),
        "sha256:" + "A" + "a" * 63,
        "SHA256:" + A64,
        "sha512:" + A64,
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "sha256:" + "g" * 64,
        "sha256" + A64,
        A64,
        "sha256: " + "a" * 63,
        D_A + "\n",
        " " + D_A,
        "",
    ],
)
def test_check_digest_rejects_malformed_and_zero(value: str) -> None:
    with pytest.raises(IdentityError):
        check_digest(value)
    assert not is_digest(value)


@pytest.mark.parametrize("value", [None, 123, b"sha256:" + A64.encode(), [D_A]])
def test_is_digest_is_false_for_non_strings(value: object) -> None:
    assert not is_digest(value)


def test_zero_digest_constant() -> None:
    assert ZERO_DIGEST == "sha256:0000000000000000000000000000000000000000000000000000000000000000"


# --- spec_hash ------------------------------------------------------------------------------------------------------

DATASET: dict[str, Any] = {
    "title": "Kansas wells \u2013 1860s",
    "slug": "ks_wells",
    "partitioning": {"timezone": "America/Chicago", "mode": "monthly"},
    "qa": {"max_invalid_ratio": 0.05},
}
PIPELINE: dict[str, Any] = {"version": 2, "steps": ["fetch", "normalise"]}
# JCS({"dataset": DATASET, "pipeline": PIPELINE}), by hand: keys sorted, no whitespace, U+2013 as UTF-8.
SPEC_JCS = (
    b'{"dataset":{"partitioning":{"mode":"monthly","timezone":"America/Chicago"},"qa":{"max_invalid_ratio":0.05},'
    b'"slug":"ks_wells","title":"Kansas wells \xe2\x80\x93 1860s"},'
    b'"pipeline":{"steps":["fetch","normalise"],"version":2}}'
)
SPEC_HEX = "0160ec54126233b0f30257f6f0d3bd61472bc7fa45a414acf0fbd1c21cd866fd"
SPEC = "sha256:" + SPEC_HEX


def test_spec_hash_worked_vector() -> None:
    assert hashlib.sha256(SPEC_JCS).hexdigest() == SPEC_HEX
    assert canonical_json({"dataset": DATASET, "pipeline": PIPELINE}) == SPEC_JCS
    assert spec_hash(DATASET, PIPELINE) == SPEC
    assert spec_hash(DATASET, PIPELINE) == "sha256:0160ec54126233b0f30257f6f0d3bd61472bc7fa45a414acf0fbd1c21cd866fd"


def test_spec_hash_ignores_key_order() -> None:
    dataset = dict(reversed(list(DATASET.items())))
    dataset["partitioning"] = {"mode": "monthly", "timezone": "America/Chicago"}
    pipeline = {"steps": ["fetch", "normalise"], "version": 2}
    assert spec_hash(dataset, pipeline) == SPEC


@pytest.mark.parametrize(
    ("dataset", "pipeline"),
    [
        ({**DATASET, "slug": "ks_wells2"}, PIPELINE),
        (DATASET, {**PIPELINE, "version": 3}),
        (DATASET, {**PIPELINE, "steps": ["normalise", "fetch"]}),  # list order is meaningful
        (PIPELINE, DATASET),  # the two halves are not interchangeable
        (DATASET, {**PIPELINE, "version": 2.5}),
    ],
)
def test_spec_hash_changes_with_content(dataset: dict[str, Any], pipeline: dict[str, Any]) -> None:
    assert spec_hash(dataset, pipeline) != SPEC


def test_spec_hash_refuses_nan() -> None:
    with pytest.raises(IdentityError):
        spec_hash({"qa": {"max_invalid_ratio": float("nan")}}, PIPELINE)


# --- dataset_version_id ------------------------------------------------------------------------------------------

PARTS = [
    PartitionContent("2023-02", D_B, (D_2, D_1)),
    PartitionContent("2023-01", D_A, (D_1,)),
]
# JCS of the content list, by hand: sorted by partition, raw digests sorted, keys sorted.
CONTENT_JCS = (
    b'[{"partition":"2023-01","processed":"sha256:' + b"a" * 64 + b'","raw":["sha256:' + b"1" * 64 + b'"]},'
    b'{"partition":"2023-02","processed":"sha256:' + b"b" * 64 + b'","raw":["sha256:' + b"1" * 64 + b'",'
    b'"sha256:' + b"2" * 64 + b'"]}]'
)
CONTENT_HEX = "327da638cafc01226da5d251af02e777abfd98a20fb17880632426ba3b46d506"
VERSION = "2023-02.0160ec54.327da638"


def test_dataset_version_id_worked_vector() -> None:
    assert hashlib.sha256(CONTENT_JCS).hexdigest() == CONTENT_HEX
    assert canonical_json([p.as_jcs() for p in sorted(PARTS, key=lambda p: p.partition)]) == CONTENT_JCS
    assert content_hash(PARTS) == "sha256:" + CONTENT_HEX
    independent = "2023-02" + "." + SPEC_HEX[:8] + "." + hashlib.sha256(CONTENT_JCS).hexdigest()[:8]
    assert independent == VERSION
    assert dataset_version_id(SPEC, PARTS) == "2023-02.0160ec54.327da638"


def test_dataset_version_id_second_vector_one_daily_partition_without_raw() -> None:
    spec = "sha256:" + "c" * 64
    parts = [PartitionContent("2023-03-15", "sha256:" + EMPTY_SHA256, ())]
    jcs = (
        b'[{"partition":"2023-03-15","processed":"sha256:'
        b'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","raw":[]}]'
    )
    assert hashlib.sha256(jcs).hexdigest().startswith("e4343c99")
    assert dataset_version_id(spec, parts) == "2023-03-15.cccccccc.e4343c99"


def test_dataset_version_id_ignores_partition_and_raw_order() -> None:
    shuffled = [
        PartitionContent("2023-01", D_A, (D_1,)),
        PartitionContent("2023-02", D_B, (D_1, D_2)),
    ]
    assert dataset_version_id(SPEC, shuffled) == VERSION
    assert dataset_version_id(SPEC, list(reversed(shuffled))) == VERSION
    assert dataset_version_id(SPEC, tuple(PARTS)) == VERSION


def test_dataset_version_id_slice_key_is_the_largest_partition() -> None:
    parts = [PartitionContent(k, D_A, ()) for k in ("2023-03-02", "2023-12-31", "2023-03-10")]
    assert dataset_version_id(SPEC, parts).startswith("2023-12-31.0160ec54.")


@pytest.mark.parametrize(
    "parts",
    [
        [PartitionContent("2023-01", D_A, (D_2,)), PARTS[0]],  # a different RAW digest
        [PartitionContent("2023-01", D_B, (D_1,)), PARTS[0]],  # a different processed digest
        [PartitionContent("2023-01", D_A, (D_1, D_1)), PARTS[0]],  # a RAW digest listed twice
        [PartitionContent("2023-01", D_A, ()), PARTS[0]],  # no RAW
        [PartitionContent("2022-12", D_A, (D_1,)), PARTS[0]],  # a different partition key
    ],
)
def test_dataset_version_id_changes_with_content(parts: list[PartitionContent]) -> None:
    vid = dataset_version_id(SPEC, parts)
    assert vid.startswith("2023-02.0160ec54.")
    assert vid != VERSION


def test_dataset_version_id_changes_with_spec() -> None:
    assert dataset_version_id("sha256:" + "c" * 64, PARTS) == "2023-02.cccccccc.327da638"


def test_dataset_version_id_refuses_a_duplicate_partition() -> None:
    with pytest.raises(IdentityError, match="twice"):
        dataset_version_id(SPEC, [*PARTS, PartitionContent("2023-01", D_A, (D_1,))])
    with pytest.raises(IdentityError):  # the same key with different content
        dataset_version_id(SPEC, [*PARTS, PartitionContent("2023-01", D_B, ())])


@pytest.mark.parametrize(
    "parts",
    [
        [PartitionContent("2023-01", ZERO_DIGEST, (D_1,))],
        [PartitionContent("2023-01", D_A, (D_1, ZERO_DIGEST))],
        [PartitionContent("2023-01", D_A.upper(), (D_1,))],
        [PartitionContent("2023-01", D_A, (A64,))],
    ],
)
def test_dataset_version_id_refuses_zero_and_malformed_digests(parts: list[PartitionContent]) -> None:
    with pytest.raises(IdentityError):
        dataset_version_id(SPEC, parts)


@pytest.mark.parametrize("spec", [ZERO_DIGEST, SPEC_HEX, SPEC.upper(), "sha256:" + SPEC_HEX[:8]])
def test_dataset_version_id_refuses_a_bad_spec(spec: str) -> None:
    with pytest.raises(IdentityError):
        dataset_version_id(spec, PARTS)


def test_dataset_version_id_refuses_no_partitions() -> None:
    with pytest.raises(IdentityError):
        dataset_version_id(SPEC, [])


def test_dataset_version_id_parses_back() -> None:
    assert parse_version_id(dataset_version_id(SPEC, PARTS)) == VersionId("2023-02", "0160ec54", "327da638")


# --- parse_version_id ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "slice_key"),
    [
        ("2023-03.1a2b3c4d.5e6f7a8b", "2023-03"),
        ("2023.1a2b3c4d.5e6f7a8b", "2023"),
        ("2023-03-15.1a2b3c4d.5e6f7a8b", "2023-03-15"),
        ("2024-02-29.00000000.ffffffff", "2024-02-29"),
    ],
)
def test_parse_version_id_accepts(value: str, slice_key: str) -> None:
    vid = parse_version_id(value)
    assert vid.slice_key == slice_key
    assert (vid.spec8, vid.content8) == tuple(value.split(".")[1:])
    assert str(vid) == value


@pytest.mark.parametrize(
    "value",
    [
        "2023-03.1A2B3C4D.5e6f7a8b",
        "2023-03.1a2b3c4d.5E6F7A8B",
        "2023-03.1a2b3c4.5e6f7a8b",
        "2023-03.1a2b3c4d.5e6f7a8",
        "2023-03.1a2b3c4d5.5e6f7a8b",
        "2023-03.1a2b3c4g.5e6f7a8b",
        "2023-13.1a2b3c4d.5e6f7a8b",
        "2023-00.1a2b3c4d.5e6f7a8b",
        "2023-02-30.1a2b3c4d.5e6f7a8b",
        "2023-02-29.1a2b3c4d.5e6f7a8b",
        "0000.1a2b3c4d.5e6f7a8b",
        "23-03.1a2b3c4d.5e6f7a8b",
        "2023-3.1a2b3c4d.5e6f7a8b",
        "2023-W05.1a2b3c4d.5e6f7a8b",  # weekly and quarterly are not partitioning modes
        "2023-Q1.1a2b3c4d.5e6f7a8b",
        "2023-03.1a2b3c4d",
        "2023-03..5e6f7a8b",
        "2023-03.1a2b3c4d.5e6f7a8b.",
        "2023-03.1a2b3c4d.5e6f7a8b\n",
        "2023-03_1a2b3c4d_5e6f7a8b",
        "<to-be-computed>",
        "",
    ],
)
def test_parse_version_id_rejects(value: str) -> None:
    with pytest.raises(IdentityError):
        parse_version_id(value)


def test_parse_version_id_rejects_non_ascii_digits() -> None:
    with pytest.raises(IdentityError):
        parse_version_id("\uff12\uff10\uff12\uff13-03.1a2b3c4d.5e6f7a8b")


# --- run ids -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", ["2023", "2023-Q1", "2023-03", "2023-W05", "2023-03-15"])
def test_run_id_round_trips(chunk: str) -> None:
    rid = run_id("20230315T120000Z", chunk, "1a2b3c4d")
    assert rid == f"kfm://run/20230315T120000Z.{chunk}.1a2b3c4d"
    assert parse_run_id(rid) == {
        "folder": f"20230315T120000Z.{chunk}.1a2b3c4d",
        "time": "20230315T120000Z",
        "chunk": chunk,
        "suffix": "1a2b3c4d",
    }


@pytest.mark.parametrize(
    ("time_utc", "chunk", "suffix"),
    [
        ("2023-03-15T12:00:00Z", "2023-03", "1a2b3c4d"),
        ("20230315T1200Z", "2023-03", "1a2b3c4d"),
        ("20230315T120000", "2023-03", "1a2b3c4d"),
        ("20230315t120000z", "2023-03", "1a2b3c4d"),
        ("20230315T120000Z", "2023-03", "1A2B3C4D"),
        ("20230315T120000Z", "2023-03", "1a2b3c4"),
        ("20230315T120000Z", "2023-03", "1a2b3c4d5"),
        ("20230315T120000Z", "2023-03", "1a2b3c4g"),
        ("20230315T120000Z", "", "1a2b3c4d"),
        ("20230315T120000Z", "2023/03", "1a2b3c4d"),
        ("20230315T120000Z", "../x", "1a2b3c4d"),
        ("20230315T120000Z", "2023.03", "1a2b3c4d"),
        ("20230315T120000Z", "2023 03", "1a2b3c4d"),
    ],
)
def test_run_id_refuses_bad_parts(time_utc: str, chunk: str, suffix: str) -> None:
    with pytest.raises(IdentityError):
        run_id(time_utc, chunk, suffix)


@pytest.mark.parametrize(
    "value",
    [
        "20230315T120000Z.2023-03.1a2b3c4d",
        "kfm://run/20230315T120000Z.2023-03.1a2b3c4d/",
        "kfm://run/20230315T120000Z.2023-03.1a2b3c4d\n",
        "kfm://runs/20230315T120000Z.2023-03.1a2b3c4d",
        "prov://kfm://run/20230315T120000Z.2023-03.1a2b3c4d",
        "KFM://run/20230315T120000Z.2023-03.1a2b3c4d",
        "kfm://run/20230315T120000Z.2023-03",
        "kfm://run/",
        "",
    ],
)
def test_parse_run_id_rejects(value: str) -> None:
    with pytest.raises(IdentityError):
        parse_run_id(value)


def test_parse_run_id_rejects_non_ascii_digits() -> None:
    with pytest.raises(IdentityError):
        parse_run_id("kfm://run/\uff12\uff10\uff12\uff130315T120000Z.2023-03.1a2b3c4d")


# --- acquisition ids -----------------------------------------------------------------------------------------------

ACQ_PARAMS = {"url": "https://example.org/wells.csv", "format": "csv"}
ACQ_JCS = (
    b'{"objects":["sha256:' + b"1" * 64 + b'","sha256:' + b"2" * 64 + b'"],'
    b'"params":{"format":"csv","url":"https://example.org/wells.csv"}}'
)


def test_acquisition_id_worked_vector() -> None:
    assert hashlib.sha256(ACQ_JCS).hexdigest()[:12] == "f80c94826176"
    assert acquisition_id("2023-01", [D_2, D_1], ACQ_PARAMS) == "2023-01.f80c94826176"


def test_acquisition_id_is_deterministic_and_independent_of_digest_and_key_order() -> None:
    first = acquisition_id("2023-01", [D_1, D_2], ACQ_PARAMS)
    assert first == acquisition_id("2023-01", [D_2, D_1], ACQ_PARAMS)
    assert first == acquisition_id("2023-01", iter([D_2, D_1]), dict(reversed(list(ACQ_PARAMS.items()))))
    assert first == acquisition_id("2023-01", (D_1, D_2), ACQ_PARAMS)


@pytest.mark.parametrize(
    ("chunk", "digests", "params"),
    [
        ("2023-01", [D_1], ACQ_PARAMS),
        ("2023-01", [D_1, D_2, D_A], ACQ_PARAMS),
        ("2023-01", [D_1, D_2], {**ACQ_PARAMS, "format": "tsv"}),
        ("2023-01", [D_1, D_2], {}),
    ],
)
def test_acquisition_id_changes_with_objects_and_params(chunk: str, digests: list[str], params: dict[str, Any]) -> None:
    aid = acquisition_id(chunk, digests, params)
    assert aid.startswith("2023-01.")
    assert aid != "2023-01.f80c94826176"


def test_acquisition_id_keeps_the_chunk_key_and_twelve_hex() -> None:
    aid = acquisition_id("2023-03-15", [D_1], {})
    key, suffix = aid.split(".")
    assert key == "2023-03-15"
    assert len(suffix) == 12
    assert set(suffix) <= set("0123456789abcdef")
    assert suffix == hashlib.sha256(b'{"objects":["sha256:' + b"1" * 64 + b'"],"params":{}}').hexdigest()[:12]
    # The chunk key is a label, not an input of the hash.
    assert acquisition_id("2023-03-16", [D_1], {}) == "2023-03-16." + suffix


@pytest.mark.parametrize("digests", [[ZERO_DIGEST], [D_1, ZERO_DIGEST], [D_1.upper()], [A64]])
def test_acquisition_id_refuses_bad_digests(digests: list[str]) -> None:
    with pytest.raises(IdentityError):
        acquisition_id("2023-01", digests, ACQ_PARAMS)


def test_acquisition_id_refuses_nan_params() -> None:
    with pytest.raises(IdentityError):
        acquisition_id("2023-01", [D_1], {"tolerance": float("nan")})
