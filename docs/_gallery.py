"""Helpers for the sphinx-gallery configuration in ``conf.py``."""

from pathlib import Path

# The order of the tutorials in the gallery; scripts not listed follow, by file name.
ORDER = [
    "four_well.py",
    "alanine_dipeptide.py",
    "grid_search.py",
    "validation.py",
    "simulator_in_a_box.py",
    "lag_and_components.py",
]


class TutorialOrder:
    """Sort key of sphinx-gallery's ``within_subsection_order``: the order of ``ORDER``."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        name = Path(filename).name
        return (ORDER.index(name) if name in ORDER else len(ORDER), name)

    def __repr__(self):
        return f"<{type(self).__name__}>"


def rerun_if_size_changed(gallery_dir, size):
    """Make sphinx-gallery rerun every tutorial when ``SKLSS_SMALL`` changed since last time.

    sphinx-gallery reruns a script only when its MD5 checksum differs from the one stored
    next to its page, so output from a full-size build would survive a CI-size one (and
    the other way round). Deleting the stored checksums forces the rerun.
    """
    gallery_dir = Path(gallery_dir)
    stamp = gallery_dir / ".sklss_small"
    if stamp.is_file() and stamp.read_text() == size:
        return
    for md5 in gallery_dir.glob("*.md5"):
        md5.unlink()
    gallery_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(size)
