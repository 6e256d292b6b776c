"""MSMT17 (Wei et al. 2018), V1 and V2 layouts: list files `relpath pid`, camera in the name."""

from __future__ import annotations

from pathlib import Path

from reidtricks.data.datasets.base import DatasetParser
from reidtricks.data.splits import ReIDItem, ReIDSplits, assemble_splits
from reidtricks.errors import InputError, MissingInputError
from reidtricks.validate import require_bool

# version -> (folder name, train image dir, test image dir)
LAYOUTS = {
    "v1": ("MSMT17_V1", "train", "test"),
    "v2": ("MSMT17_V2", "mask_train_v2", "mask_test_v2"),
}
LISTS = ("list_train.txt", "list_val.txt", "list_query.txt", "list_gallery.txt")


def read_list_file(list_path: Path, image_dir: Path) -> list[ReIDItem]:
    """Items of one list file; camera = int(third `_` field of the file name) - 1."""
    if not list_path.is_file():
        raise MissingInputError(f"{list_path} is missing (expected lines 'relpath pid')")
    items = []
    for number, line in enumerate(list_path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        fields = Path(parts[0]).name.split("_")
        if (
            len(parts) != 2
            or not parts[1].lstrip("-").isdigit()
            or len(fields) < 3
            or not fields[2].isdigit()
        ):
            raise InputError(
                f"{list_path}:{number}: expected 'relpath pid' with a file name like "
                f"0000_000_01_0303morning_0015_0.jpg, got {line.strip()!r}"
            )
        items.append((str(image_dir / parts[0]), int(parts[1]), int(fields[2]) - 1))
    return sorted(items)


class MSMT17(DatasetParser):
    """<root>/MSMT17_V1/ or <root>/MSMT17_V2/ (also under msmt17/, or root itself)."""

    name = "msmt17"
    num_splits = 1

    def __init__(
        self,
        root: str | Path,
        version: str = "auto",
        merge_train_val: bool = True,
        split: int = 0,
        combineall: bool = False,
    ) -> None:
        if version not in ("auto", *LAYOUTS):
            raise InputError(f"msmt17 version={version!r}: expected auto, v1 or v2")
        super().__init__(root, split, combineall)
        self.version = version
        self.merge_train_val = require_bool(f"{self.name}: merge_train_val", merge_train_val)

    def _locate(self) -> tuple[Path, str, str]:
        root = Path(self.root)
        versions = list(LAYOUTS) if self.version == "auto" else [self.version]
        tried = []
        for version in versions:
            folder_name, train_dir, test_dir = LAYOUTS[version]
            for base in (root / folder_name, root / "msmt17" / folder_name, root):
                tried.append(base)
                if (base / train_dir).is_dir() and (base / test_dir).is_dir():
                    return base, train_dir, test_dir
        raise MissingInputError(
            f"dataset not found: tried {', '.join(str(p) for p in dict.fromkeys(tried))}; expected "
            "MSMT17_V1/{train,test,list_*.txt} or MSMT17_V2/{mask_train_v2,mask_test_v2,list_*.txt} "
            "(set paths.data_dir=/path/to/datasets)"
        )

    def load(self) -> ReIDSplits:
        base, train_dir, test_dir = self._locate()
        train = read_list_file(base / LISTS[0], base / train_dir)
        if self.merge_train_val:
            train += read_list_file(base / LISTS[1], base / train_dir)
        return assemble_splits(
            self.name,
            train,
            read_list_file(base / LISTS[2], base / test_dir),
            read_list_file(base / LISTS[3], base / test_dir),
            combineall=self.combineall,
            test_pid_offset=1 + max((pid for _, pid, _ in train), default=-1),  # test pids restart
        )
