"""benchmarks/summary.py's offline ratios from made-up rows: which configurations it sets against
which (no benchmark runs here)."""

from benchmarks import summary
from benchmarks.offline import (
    CODEC,
    FLOOR,
    HANDWRITTEN,
    MP1,
    MP2,
    OURS,
    PEER1,
    PEER2,
)


def _row(workload, config, repeats, cores_busy=1.0, inputs=None):
    ordered = sorted(repeats)
    return {
        "workload": workload,
        "inputs": inputs or (20000 if workload == "32x32 PNG" else 2000),
        "config": config,
        "unit": "copies/s",
        "per_second": {"median": ordered[len(ordered) // 2], "min": ordered[0], "max": ordered[-1]},
        "per_second_per_core": round(ordered[len(ordered) // 2] / 2),
        "peak_rss_mib": {"median": 900, "min": 900, "max": 900},
        "cores_busy": cores_busy,
        "cores_busy_repeats": [round(cores_busy + d, 2) for d in (-0.1, 0, 0.1)],
        "repeats": repeats,
    }


def _offline(peers=True):
    rows = []
    for workload, scale in (("32x32 PNG", 10.0), ("224x224 JPEG", 1.0)):
        rows += [
            _row(workload, OURS, [250 * scale, 260 * scale, 240 * scale], 1.4),
            _row(workload, MP1, [200 * scale, 210 * scale, 190 * scale], 1.3),
            _row(workload, MP2, [300 * scale, 280 * scale, 290 * scale], 1.7),
            _row(workload, FLOOR, [900 * scale] * 3),  # faster, but augments nothing
            _row(workload, HANDWRITTEN, [200 * scale] * 3),
            _row(workload, CODEC, [1000 * scale] * 3),
        ]
        if peers:
            rows += [
                _row(workload, PEER1, [150 * scale] * 3),
                _row(workload, PEER2, [300 * scale, 200 * scale, 290 * scale], 1.9),
            ]
    rows.append(_row("32x32 PNG", OURS, [250, 250, 250], inputs=2000))  # the memory run
    return {"rows": rows, "command": "python -m benchmarks.offline"}


def test_the_best_of_ours_against_the_best_peer_pairs_their_repeats():
    found = summary.ratios(_offline(), {})
    for name in ("offline_224_over_peer", "offline_32_over_peer"):
        value = found[name]
        assert (value["ours"], value["peer"]) == (MP2, PEER2)
        # repeat by repeat: 300/300, 280/200, 290/290
        assert (value["median"], value["min"], value["max"]) == (1.0, 1.0, 1.4)


def test_cores_busy_is_our_best_224_configurations():
    value = summary.ratios(_offline(), {})["cores_busy_best_offline"]
    assert value == {"median": 1.7, "min": 1.6, "max": 1.8, "config": MP2}


def test_no_peer_rows_no_peer_ratios_and_the_retired_targets_are_gone():
    found = summary.ratios(_offline(peers=False), {})
    assert "offline_224_over_peer" not in found and "offline_32_over_peer" not in found
    assert "cores_busy_best_offline" in found
    retired = {"offline_32_over_beam_floor", "mp2_over_inmemory_32", "mp2_over_inmemory_224"}
    assert not retired & set(found) and not retired & set(summary.TARGETS)
    assert set(found) <= set(summary.TARGETS)


def test_the_docs_block_shows_the_stage_profile_when_phases_has_one():
    run = {
        "date": "2026-11-30",
        "machine": {"cores": 2, "cpu": "x", "tensorflow": "t", "apache_beam": "b"},
        "sources": {"memory": "python -m benchmarks.memory"},
    }
    core_ops = {"rows": [], "command": "python -m benchmarks.core_ops"}
    stages = [
        {"stage": "brightness", "ours_us": 1210, "peer_us": 95},
        {"stage": "one TensorFlow element-wise pass (a float32 multiply)", "ours_us": 420},
    ]
    phases = {"command": "python -m benchmarks.phases", "stages_224": stages}
    block = summary.readme_block(run, "TARGETS", _offline(), core_ops, phases)
    assert "**Where the 224 px time goes** (`python -m benchmarks.phases`" in block
    assert "| brightness | 1,210 | 95 |" in block
    assert "| one TensorFlow element-wise pass (a float32 multiply) | 420 | - |" in block
    assert "Where the 224 px time goes" not in summary.readme_block(run, "T", _offline(), core_ops)
