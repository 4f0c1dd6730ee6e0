"""The price table's cut: what pricing reads of litellm's ~3.5 MB table, kept in ``server.data_dir`` between
starts. Every price read through the cut equals the one read from the whole table, a start reads the kept copy
only when it was cut from the very file in force, and a folder that cannot hold the copy costs nothing but time."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

from accounting.accountant import Accountant
from accounting.config import AccountingConfig
from accounting.price_table import CUT_FILE, PriceTable, _entry_price, litellm_table_path

_TABLE = {
    "m": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "max_tokens": 4096, "mode": "chat"},
    "image-only": {"output_cost_per_image": 0.04},
}


def _table(folder: Path, table: dict[str, Any] = _TABLE) -> Path:
    f = folder / "prices.json"
    f.write_text(json.dumps(table))
    return f


def test_every_price_read_through_the_cut_equals_the_price_read_from_the_whole_bundled_table(
    tmp_path: Path,
) -> None:
    path = litellm_table_path()
    assert path is not None
    raw = json.loads(path.read_bytes())
    table = PriceTable.load(str(path), str(tmp_path))
    whole = {
        name: p
        for name, entry in raw.items()
        if name != "sample_spec" and (p := _entry_price(entry)) is not None
    }
    assert len(whole) > 1000
    assert set(table.prices) == set(whole)
    assert all(table.prices[name] == price for name, price in whole.items())
    kept = (tmp_path / CUT_FILE).stat().st_size
    assert kept < path.stat().st_size / 2  # the point of the cut


def test_the_cut_keeps_only_priced_entries_and_their_per_token_rates(tmp_path: Path) -> None:
    PriceTable.load(str(_table(tmp_path)), str(tmp_path / "data"))
    kept = json.loads((tmp_path / "data" / CUT_FILE).read_bytes())
    assert kept["entries"] == {"m": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}}


def test_a_start_reads_the_cut_kept_from_the_same_table_file(tmp_path: Path) -> None:
    f = _table(tmp_path)
    PriceTable.load(str(f), str(tmp_path / "a"))
    kept = json.loads((tmp_path / "a" / CUT_FILE).read_bytes())
    kept["entries"]["m"]["input_cost_per_token"] = 7e-06  # only the kept copy says so
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / CUT_FILE).write_text(json.dumps(kept))
    price = PriceTable.load(str(f), str(tmp_path / "b")).get("m")
    assert price is not None and price.input == Decimal("0.000007")


def test_a_table_file_changed_since_the_cut_was_kept_is_cut_again(tmp_path: Path) -> None:
    f = _table(tmp_path)
    PriceTable.load(str(f), str(tmp_path / "data"))
    _table(tmp_path, {"m": {"input_cost_per_token": 3e-06, "output_cost_per_token": 4e-06}})
    os.utime(f, ns=(1, 1))  # a different mtime, whatever the file system's clock resolution
    price = PriceTable.load(str(f), str(tmp_path / "data")).get("m")
    assert price is not None and price.input == Decimal("0.000003")
    kept = json.loads((tmp_path / "data" / CUT_FILE).read_bytes())
    assert (kept["of"]["mtime_ns"], kept["entries"]["m"]["input_cost_per_token"]) == (1, 3e-06)


def test_an_unreadable_kept_cut_is_replaced_by_a_fresh_one(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / CUT_FILE).write_text('{"of": ')
    price = PriceTable.load(str(_table(tmp_path)), str(tmp_path / "data")).get("m")
    assert price is not None and price.output == Decimal("0.000002")
    assert json.loads((tmp_path / "data" / CUT_FILE).read_bytes())["entries"].keys() == {"m"}


def test_a_data_dir_that_cannot_hold_the_cut_still_loads_the_table(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("a file where the folder would be")
    price = PriceTable.load(str(_table(tmp_path)), str(tmp_path / "data" / "sub")).get("m")
    assert price is not None and price.input == Decimal("0.000001")


async def test_the_accountant_keeps_the_cut_in_its_data_dir(tmp_path: Path) -> None:
    f = _table(tmp_path)
    await Accountant(AccountingConfig(price_table=str(f)), str(tmp_path / "data")).close()
    assert json.loads((tmp_path / "data" / CUT_FILE).read_bytes())["of"]["path"] == str(f)
