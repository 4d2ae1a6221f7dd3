"""`tessera buildings-train` settings: one frozen dataclass, its flags and their checks."""
from __future__ import annotations

import dataclasses

from tessera.config import check, check_range, setting

SAVE_DTYPES = ("float32", "float16")


@dataclasses.dataclass(frozen=True)
class BuildingsTrainConfig:
    output: str = setting(help="output .msgpack (a .json card is written beside it)")
    # data
    images: str = setting("", help="glob of labelled GeoTIFFs")
    labels: str = setting("", help="vector label file or glob (GeoJSON, GeoParquet, ...)")
    repeat_images: int = setting(1, help="use each labelled GeoTIFF this many times (weighs a few real "
                                         "tiles against many rendered scenes)")
    unlabelled: str = setting("", help="glob of unlabelled GeoTIFFs for self-training")
    synthetic_seeds: str = setting("", help="render labelled scenes for seeds 'A:B' or 'a,b'")
    synthetic_unlabelled_seeds: str = setting("", help="render unlabelled scenes for seeds")
    synthetic_size: int = setting(512, help="pixels per side of rendered scenes")
    val_seeds: str = setting("", help="synthetic seeds for the pixel scores in the card")
    world_seeds: str = setting("", help="render labelled scenes on real layouts (world.py) for seeds")
    world_unlabelled_seeds: str = setting("", help="render unlabelled real-layout scenes for seeds")
    layouts: str = setting("data/real/footprints", help="folder of real footprints (`make real-data`)")
    appearance_from: str = setting("", help="glob of real (unlabelled) GeoTIFFs whose grey-level "
                                            "statistics rendered scenes are matched to")
    appearance_p: float = setting(0.5, help="share of rendered scenes matched to a real tile")
    init_from: str = setting("", help="fine-tune from `shipped` (the shipped U-Net) or a .msgpack "
                                      "checkpoint (its architecture wins over --base/--max-channels)")
    processes: int = setting(0, help="worker processes for rendering (0: cpu count)")
    bands: str = setting("", metavar="N[,N,N]",
                         help="band numbers of the GeoTIFFs, as `tessera buildings --bands` (e.g. 3,2,1)")
    # training
    steps: int = setting(3000, help="supervised (teacher) steps")
    student_steps: int = setting(2000, help="self-training (student) steps")
    batch_size: int = setting(16)
    crop: int = setting(256, help="training crop size (multiple of 16)")
    chip: int = setting(512, help="tiles are held on the device as chips of this size")
    lr: float = setting(2e-3)
    mixup: bool = setting(True)
    mixup_alpha: float = setting(0.4)
    self_training: bool = setting(True)
    kl_weight: float = setting(1.0)
    w0: float = setting(10.0, help="separation weight amplitude")
    sigma_m: float = setting(2.5, help="separation weight width, metres")
    gsd_m: float = setting(0.5, help="metres per pixel of the training data")
    base: int = setting(16)
    max_channels: int = setting(128)
    tiny: bool = setting(False, help="the tiny test model (base 4, max 16)")
    seed: int = setting(0)
    max_seconds: float | None = setting(None, type=float, help="cap per phase (stops early)")
    save_dtype: str = setting("float32", choices=SAVE_DTYPES)
    log_every: int = setting(100)
    checkpoint_every: int = setting(0, help="also save OUTPUT.<phase>-<step>.msgpack every this many "
                                            "steps (0: never), to pick the step on real dev data")

    def __post_init__(self):
        check(self.images or self.synthetic_seeds or self.world_seeds,
              "give labelled data: --images with --labels, and/or --synthetic-seeds / --world-seeds")
        check_range(self, "appearance_p", 0.0, 1.0)
        try:
            numbers = self.band_numbers or ()
        except ValueError:
            numbers = (0,)
        check(len(numbers) in (0, 1, 3) and all(b >= 1 for b in numbers),
              f"--bands takes one or three band numbers >= 1, like 3,2,1 (got {self.bands!r})")
        check(not self.images or self.labels, "--images needs --labels")
        check(self.crop > 0 and self.crop % 16 == 0, f"--crop must be a positive multiple of 16 (got {self.crop})")
        check(self.chip >= self.crop, f"--chip must be >= --crop (got {self.chip} < {self.crop})")
        for name in ("steps", "student_steps", "processes", "checkpoint_every"):
            check_range(self, name, 0)
        for name in ("batch_size", "synthetic_size", "base", "max_channels", "log_every", "repeat_images"):
            check_range(self, name, 1)
        for name in ("lr", "gsd_m", "sigma_m"):
            check_range(self, name, 0.0, low_open=True)
        check(self.save_dtype in SAVE_DTYPES, f"--save-dtype must be one of {', '.join(SAVE_DTYPES)}")

    @property
    def band_numbers(self) -> tuple[int, ...] | None:
        return tuple(int(b) for b in self.bands.split(",")) if self.bands.strip() else None

    @property
    def sigma_px(self) -> float:
        return self.sigma_m / self.gsd_m


@dataclasses.dataclass(frozen=True)
class SynthSceneConfig:
    output: str = setting(help="output directory (local or gs://)")
    seed: int = setting(help="scene seed (0..319 trained the shipped model)")
    size: int = setting(1024, help="pixels per side (0.5 m each), >= 64")
    center: str = setting("5.6037,-0.1870", help="LAT,LON of the scene centre (default: Accra)")

    def __post_init__(self):
        check_range(self, "size", 64)
        try:
            lat, lon = self.latlon
        except ValueError:
            check(False, f"--center must be LAT,LON (got {self.center!r})")
        check(-80 <= lat <= 84 and -180 <= lon <= 180,
              f"--center {self.center!r} is outside UTM latitudes (-80..84) / longitudes (-180..180)")

    @property
    def latlon(self) -> tuple[float, float]:
        lat, lon = (float(v) for v in self.center.split(","))
        return lat, lon
