"""One configuration per table cell (prunepeft/report/configs.py): runs that differ in a key that changes a
result get a row each and are never pooled or paired; keys that change nothing (or are read by nothing) never
split; the fingerprint's keys; the learning-rate label the report selects over."""
from __future__ import annotations

from pathlib import Path

from report_fixtures import make_run

from prunepeft.report import build_tables, collect_runs, to_csv, to_markdown


def _subset_tree(root: Path) -> Path:
    """LoRA on RTE at two training subsets (and an lr sweep at one of them); PrunePEFT at one."""
    B = "baseline"
    for seed, (big, small, slow) in {1: (0.66, 0.50, 0.60), 2: (0.68, 0.54, 0.62)}.items():
        make_run(root, f"lora2000/s{seed}", command=B, method="lora", task="rte", seed=seed, value=big)
        make_run(root, f"lora500/s{seed}", command=B, method="lora", task="rte", seed=seed, value=small,
                 config_over={"data": {"train_subset": 500}})
        make_run(root, f"lora2000-lr5e-4/s{seed}", command=B, method="lora", task="rte", seed=seed, value=slow,
                 lr=5e-4)
        make_run(root, f"hybrid/s{seed}", command="search", task="rte", seed=seed, value=0.70 + 0.02 * (seed - 1))
    return root


def test_two_configurations_of_one_cell_get_a_row_each(tmp_path):
    """Pooled, LoRA's lr sweep would weigh both subsets at 1e-3 (mean 59.5) against 5e-4 (61.0) and show 61.0;
    split, each subset is its own row and the sweep runs within the 2000-row configuration."""
    (t2,) = build_tables(collect_runs(_subset_tree(tmp_path)), ["table2"])
    assert t2.rows == [("minilm_l6", "LoRA [data.train_subset=500]"), ("minilm_l6", "LoRA [data.train_subset=2000]"),
                       ("minilm_l6", "PrunePEFT")]  # configurations in natural order
    md = to_markdown(t2)
    # 2000: (66, 68) after the lr sweep kept 1e-3 (67.0 vs 61.0); 500: (50, 54), sd 2.8; paper LoRA RTE 84.0
    assert "| minilm_l6 | LoRA [data.train_subset=2000] | <u>67.0 ± 1.4 (n=2)</u> | 84.0 | -17.0 | 0.75 | 1 | -0.25 |" \
        in md
    assert "| minilm_l6 | LoRA [data.train_subset=500] | 52.0 ± 2.8 (n=2) † | 84.0 | -32.0 | 0.75 | 1 | -0.25 |" in md
    assert "| minilm_l6 | PrunePEFT | **71.0 ± 1.4 (n=2)** | 85.5 | -14.5 |" in md
    # paired to PrunePEFT (70, 72): 2000 -> (-4, -4); 500 -> (-20, -18)
    assert "| minilm_l6 | LoRA [data.train_subset=2000] | -4.0 ± 0.0 (n=2) |" in md
    assert "| minilm_l6 | LoRA [data.train_subset=500] | -19.0 ± 1.4 (n=2) |" in md
    assert ("minilm_l6 LoRA: one row per configuration (its runs differ in data.train_subset), never pooled into "
            "one cell.") in md
    assert "minilm_l6 LoRA [data.train_subset=2000] on RTE: lr 0.001 (of 0.0005, 0.001)" in md
    assert "59.5" not in md and "61.0" not in md
    csv_lines = to_csv(t2).splitlines()
    assert "table2,minilm_l6,LoRA [data.train_subset=500],RTE,52.0,2.8284,2,1;2,,True,-19.0,1.4142,2,84.0,-32.0" in csv_lines


def test_prunepeft_in_two_search_spaces_is_split_and_not_paired(tmp_path):
    """PrunePEFT with and without DoRA in its search space: two rows, and no paired difference to either."""
    for seed in (1, 2):
        make_run(tmp_path, f"h/s{seed}", command="search", task="rte", seed=seed, value=0.70)
        make_run(tmp_path, f"hd/s{seed}", command="search", task="rte", seed=seed, value=0.74,
                 space=["lora", "dora", "adapter"])
        make_run(tmp_path, f"lora/s{seed}", command="baseline", method="lora", task="rte", seed=seed, value=0.6)
    (t2,) = build_tables(collect_runs(tmp_path), ["table2"])
    assert [r[1] for r in t2.rows] == ["LoRA", "PrunePEFT [search_space=lora,adapter]",
                                       "PrunePEFT [search_space=lora,dora,adapter]"]
    md = to_markdown(t2)
    assert "| minilm_l6 | PrunePEFT [search_space=lora,dora,adapter] | **74.0 ± 0.0 (n=2)** | 85.5 | -11.5 |" in md
    assert not t2.deltas and "No paired difference to PrunePEFT where PrunePEFT ran in several configurations: " \
        "minilm_l6 on RTE." in md


def test_configurations_differing_in_many_keys_are_numbered_and_spelled_out(tmp_path):
    """Three differing keys would make a long row name: `config i` in the row, its keys and values in a note."""
    a = {"search": {"k": 2, "reinit": "paper"}, "data": {"heldout": None}}
    b = {"search": {"k": 4, "reinit": "keep"}, "data": {"heldout": 500}}
    for seed in (1, 2):
        make_run(tmp_path, f"a/s{seed}", command="search", task="sst2", seed=seed, value=0.80, config_over=a)
        make_run(tmp_path, f"b/s{seed}", command="search", task="sst2", seed=seed, value=0.90, config_over=b)
    (t2,) = build_tables(collect_runs(tmp_path), ["table2"])
    assert t2.rows == [("minilm_l6", "PrunePEFT [config 1]"), ("minilm_l6", "PrunePEFT [config 2]")]
    md = to_markdown(t2)
    assert "| minilm_l6 | PrunePEFT [config 1] | **90.0 ± 0.0 (n=2)** | 96.6 | -6.6 |" in md
    assert "| minilm_l6 | PrunePEFT [config 2] | <u>80.0 ± 0.0 (n=2)</u> | 96.6 | -16.6 |" in md
    assert ("minilm_l6 PrunePEFT: one row per configuration (its runs differ in data.heldout, search.k, search.reinit), "
            "never pooled into one cell: config 1 = data.heldout=500, search.k=4, search.reinit=keep; config 2 = "
            "data.heldout=null, search.k=2, search.reinit=paper.") in md


def test_keys_that_do_not_change_a_result_never_split(tmp_path):
    """Paths, progress, trackers, the device, debug settings and the seed are not configurations;
    a run whose run.json has no config (an old layout) is not a configuration of its own either."""
    import json

    volatile = [{"data": {"dir": "/data/a"}, "model": {"local": "/tmp/m"}, "logger": {"name": "csv"}},
                {"data": {"dir": "/data/b"}, "train": {"progress": True, "device": "cuda", "log_every": 1},
                 "extra": {"runs_root": "elsewhere"}, "debug": {"kill_at": "e:1"}}]
    for seed, over in enumerate(volatile, start=1):
        make_run(tmp_path, f"h/s{seed}", command="search", task="rte", seed=seed, value=0.70, config_over=over)
    old = make_run(tmp_path, "h/s3", command="search", task="rte", seed=3, value=0.73)
    info = json.loads((old / "run.json").read_text())
    del info["config"]
    (old / "run.json").write_text(json.dumps(info))
    (t2,) = build_tables(collect_runs(tmp_path), ["table2"])
    assert t2.rows == [("minilm_l6", "PrunePEFT")] and t2.cell(t2.rows[0], "RTE").n == 3


def test_transfer_runs_from_per_seed_sources_are_one_configuration(tmp_path):
    """Each seed's strategy transfer reads its own source run (strategy.from_run differs): still one row."""
    for seed in (1, 2):
        src = make_run(tmp_path, f"rte/s{seed}", command="search", task="rte", seed=seed, value=0.7)
        make_run(tmp_path, f"sst2/s{seed}", command="search", task="sst2", seed=seed, value=0.9 + 0.01 * seed,
                 transfer={"kind": "strategy", "from_run": str(src)}, config_over={"strategy": {"from_run": str(src)}})
    (t6,) = build_tables(collect_runs(tmp_path), ["table6"])
    assert t6.rows == [("minilm_l6", "Strategy transfer from RTE")]
    assert t6.cell(t6.rows[0], "SST-2").n == 2


def test_fingerprint_keys():
    from prunepeft.report.configs import fingerprint

    train = {"train": {"lr_peft": 1e-3, "lr_head": 1e-3, "lr_backbone": 2e-5, "progress": True, "epochs": 2}}
    # LoRA: the swept PEFT rate and the head's (one lr setting the report selects over: collect.lr_label)
    # are left out, and so is the frozen backbone's rate
    assert fingerprint(train, "baseline", "lora") == {"train.epochs": "2"}
    fixed_head = {"train": {**train["train"], "lr_peft": 1e-2}}
    assert fingerprint(fixed_head, "baseline", "lora") == fingerprint(train, "baseline", "lora")
    # FFT: the backbone's rate is the swept one; the head's rate is a setting of its own
    assert fingerprint(train, "baseline", "fft") == {"train.epochs": "2", "train.lr_head": "0.001",
                                                     "train.lr_peft": "0.001"}
    assert fingerprint({"search": {"k": 4, "diagnostics": {"enabled": True}}, "method": "fft", "seed": 3},
                       "search", "prunepeft") == {"search.k": "4"}
    assert fingerprint(None, "search", "prunepeft") == {}
    # precision: auto and bf16 both run as fp32 on a CPU; on a GPU they are two settings
    precision = [fingerprint({"train": {"precision": p}}, "search", "prunepeft", "cpu") for p in ("auto", "bf16")]
    assert precision == [{"train.precision": "fp32"}] * 2
    assert fingerprint({"train": {"precision": "auto"}}, "search", "prunepeft", "cuda") == {"train.precision": "auto"}
    # a setting another key switches off: type_norm_criteria is read only under a type_norm
    off = {"search": {"type_norm": "none", "type_norm_criteria": ["taylor"]}}
    assert fingerprint(off, "search", "prunepeft") == {"search.type_norm": "none"}


def test_a_plain_lr_sweep_is_one_configuration_with_the_head_in_the_lr_label():
    """`train.lr_peft=0.001,0.01` with the head at its default: one configuration, two lr settings the
    report chooses between (the 0.001 run's head equals its rate, the 0.01 run's does not)."""
    from prunepeft.report.collect import lr_label

    assert lr_label({"peft": 1e-3, "head": 1e-3, "backbone": 5e-5}, "lora") == "0.001"
    assert lr_label({"peft": 1e-2, "head": 1e-3, "backbone": 5e-5}, "lora") == "0.01 (head 0.001)"
    assert lr_label({"peft": 1e-3, "head": 1e-3, "backbone": 2e-5}, "fft") == "2e-05"
    assert lr_label(1e-3, "lora") == "0.001"
