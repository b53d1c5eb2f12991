"""`labml train bm-compare` runs every sampler on one budget of updates and writes its table and plot."""

from labml.cli import main
from labml.runs import store


def test_bm_compare_writes_a_table_and_plot_for_each_method(tmp_path):
    run_dir = tmp_path / "cmp"
    rc = main(["train", "bm-compare", "--hidden", "4", "--updates", "10", "--eval-every", "5",
               "--methods", "cd,pcd,metropolis,relaxation", "--train-size", "200", "--test-size", "100",
               "--run-dir", str(run_dir)])
    assert rc == 0
    rows = store.load(run_dir).series("compare")  # run.h5 (and `labml export --csv` for a CSV file)
    assert {r["method"] for r in rows} == {"cd", "pcd", "metropolis", "relaxation"}
    # every method got the same budget of parameter updates, and an exact log-likelihood (4 hidden units)
    for method in ("cd", "pcd", "metropolis", "relaxation"):
        assert max(int(r["updates"]) for r in rows if r["method"] == method) == 10
    assert all(float(r["test_loglik"]) < 0 for r in rows)
    assert (run_dir / "figures" / "compare.png").stat().st_size > 1000
