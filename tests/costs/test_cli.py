"""`labkit cost`: the catalog, counts, workload costs and break-even on the command line."""

from labkit.cli import main


def test_prices_lists_catalog(capsys):
    assert main(["cost", "prices", "--active"]) == 0
    output = capsys.readouterr().out
    assert "databricks-meta-llama-3-3-70b-instruct" in output
    assert "databricks-dbrx-instruct" not in output       # retired


def test_count_marks_estimates(capsys):
    assert main(["cost", "count", "Hello world", "--model", "databricks-meta-llama-3-3-70b-instruct",
                 "--model", "databricks-gpt-5-mini"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["databricks-meta-llama-3-3-70b-instruct", "2", "llama-bpe", "exact"]
    assert lines[2].split() == ["databricks-gpt-5-mini", "2", "cl100k", "estimate"]


def test_workload_cost_by_hand(capsys):
    assert main(["cost", "workload", "--requests", "1000", "--input-tokens", "1000", "--output-tokens", "1000",
                 "--model", "databricks-meta-llama-3-1-8b-instruct"]) == 0
    # 1000 * (1000 * 0.15 + 1000 * 0.45) / 1e6 = 0.60 $
    assert capsys.readouterr().out.splitlines()[1].split() == [
        "databricks-meta-llama-3-1-8b-instruct", "0.000600", "0.60"]


def test_break_even_prints_volume(capsys):
    assert main(["cost", "break-even", "--model", "databricks-meta-llama-3-1-8b-instruct", "--usd-per-hour", "1",
                 "--output-tokens-per-second", "1000", "--prompt-tokens-per-second", "10000",
                 "--input-tokens", "500", "--output-tokens", "200"]) == 0
    # 730 $ a month / 0.000165 $ per request
    assert "break-even: 4,424,242 requests per month" in capsys.readouterr().out


def test_unknown_model_exits_2(capsys):
    assert main(["cost", "workload", "--requests", "1", "--input-tokens", "1", "--output-tokens", "1",
                 "--model", "gpt-17"]) == 2
    assert "no price for 'gpt-17'" in capsys.readouterr().err


def test_invalid_machine_exits_2(capsys):
    assert main(["cost", "break-even", "--model", "databricks-meta-llama-3-1-8b-instruct", "--usd-per-hour", "0",
                 "--output-tokens-per-second", "1", "--prompt-tokens-per-second", "1",
                 "--input-tokens", "1", "--output-tokens", "1"]) == 2
    assert "usd_per_hour must be > 0" in capsys.readouterr().err
