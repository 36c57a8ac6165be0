"""Avatar attributes drawn from a seed in plain Python (no Blender), and the English caption they make.

Every categorical family and its values are listed in FAMILIES; the attribute classifier and the text
encoder build on this table, so a value added here is learned everywhere. Continuous shape parameters
(proportions) are drawn too, with a named bucket in `head_shape` for captions and classification.
"""

from __future__ import annotations

import random
from typing import Any

FAMILIES: dict[str, tuple[str, ...]] = {
    "sex": ("man", "woman"),
    "age": ("young", "adult", "old"),
    "head_shape": ("round", "long", "wide", "narrow"),
    "skin_tone": ("pale", "light", "tan", "brown", "dark"),
    "eye_color": ("brown", "blue", "green", "grey"),
    "eyebrows": ("thin", "thick", "bushy"),
    "hair_style": ("bald", "buzz", "short", "bob", "long", "bun", "mohawk"),
    "hair_color": ("black", "brown", "blond", "red", "grey", "white", "blue"),
    "facial_hair": ("none", "moustache", "beard"),
    "glasses": ("none", "round", "square"),
    "headwear": ("none", "cap", "beanie", "top_hat"),
    "clothing": ("t_shirt", "collared_shirt", "turtleneck"),
    "shirt_color": ("red", "blue", "green", "yellow", "white", "black", "purple"),
    "earrings": ("none", "studs", "hoops"),
}

# Linear-ish sRGB colours of each named value; the factory turns them into materials.
SKIN_RGB = {
    "pale": (0.96, 0.84, 0.76),
    "light": (0.90, 0.72, 0.60),
    "tan": (0.78, 0.58, 0.42),
    "brown": (0.55, 0.37, 0.25),
    "dark": (0.32, 0.20, 0.13),
}
EYE_RGB = {
    "brown": (0.35, 0.2, 0.08),
    "blue": (0.2, 0.45, 0.85),
    "green": (0.2, 0.6, 0.3),
    "grey": (0.55, 0.58, 0.6),
}
HAIR_RGB = {
    "black": (0.04, 0.035, 0.03),
    "brown": (0.30, 0.17, 0.08),
    "blond": (0.92, 0.78, 0.42),
    "red": (0.75, 0.25, 0.08),
    "grey": (0.60, 0.60, 0.60),
    "white": (0.93, 0.93, 0.92),
    "blue": (0.15, 0.35, 0.9),
}
SHIRT_RGB = {
    "red": (0.8, 0.1, 0.1),
    "blue": (0.12, 0.25, 0.75),
    "green": (0.15, 0.6, 0.2),
    "yellow": (0.95, 0.8, 0.15),
    "white": (0.92, 0.92, 0.92),
    "black": (0.06, 0.06, 0.07),
    "purple": (0.5, 0.2, 0.65),
}
HEADWEAR_RGB = ((0.8, 0.1, 0.1), (0.1, 0.2, 0.6), (0.1, 0.1, 0.1), (0.9, 0.6, 0.1), (0.2, 0.5, 0.25))


def draw_attributes(seed: int) -> dict[str, Any]:
    """All of an avatar's attributes from its seed; the same seed gives the same dict on every machine."""
    rng = random.Random(f"rodin-avatar-{seed}")
    a: dict[str, Any] = {}
    a["sex"] = rng.choice(FAMILIES["sex"])
    a["age"] = rng.choices(FAMILIES["age"], weights=(3, 4, 3))[0]
    a["head_shape"] = rng.choice(FAMILIES["head_shape"])
    a["skin_tone"] = rng.choice(FAMILIES["skin_tone"])
    a["eye_color"] = rng.choice(FAMILIES["eye_color"])
    a["eyebrows"] = rng.choice(FAMILIES["eyebrows"])

    styles = FAMILIES["hair_style"]
    style_weights = (2, 2, 3, 2, 2, 1.5, 1) if a["sex"] == "man" else (0.6, 0.8, 2, 3, 3.5, 2.5, 1)
    a["hair_style"] = rng.choices(styles, weights=style_weights)[0]
    colours = FAMILIES["hair_color"]
    colour_weights = {
        "young": (3, 3, 2.5, 2, 0.4, 0.6, 1.2),
        "adult": (3, 3, 2, 1.5, 1.5, 0.6, 0.6),
        "old": (1, 1, 0.6, 0.4, 4, 3, 0.3),
    }[a["age"]]
    a["hair_color"] = rng.choices(colours, weights=colour_weights)[0]
    a["facial_hair"] = (
        rng.choices(FAMILIES["facial_hair"], weights=(4, 2, 3))[0] if a["sex"] == "man" else "none"
    )
    a["glasses"] = rng.choices(FAMILIES["glasses"], weights=(2, 1, 1))[0]
    # Hats replace the hair on top; a bun or a mohawk would poke through them.
    can_wear_hat = a["hair_style"] not in ("bun", "mohawk")
    a["headwear"] = rng.choices(FAMILIES["headwear"], weights=(3, 1, 1, 0.8))[0] if can_wear_hat else "none"
    a["clothing"] = rng.choice(FAMILIES["clothing"])
    a["shirt_color"] = rng.choice(FAMILIES["shirt_color"])
    a["earrings"] = rng.choices(
        FAMILIES["earrings"], weights=(3, 1, 1) if a["sex"] == "woman" else (6, 1, 1)
    )[0]

    base = {
        "round": (1.0, 1.0, 1.0),
        "long": (0.93, 1.12, 1.0),
        "wide": (1.12, 0.96, 1.02),
        "narrow": (0.88, 1.03, 0.97),
    }
    w, h, d = base[a["head_shape"]]
    a["shape"] = {
        "head_width": round(w * rng.uniform(0.96, 1.04), 4),
        "head_height": round(h * rng.uniform(0.96, 1.04), 4),
        "head_depth": round(d * rng.uniform(0.95, 1.05), 4),
        "jaw_width": round(rng.uniform(0.75, 1.1) + (0.08 if a["sex"] == "man" else -0.05), 4),
        "nose_size": round(rng.uniform(0.75, 1.3), 4),
        "ear_size": round(rng.uniform(0.8, 1.25), 4),
        "shoulder_width": round(rng.uniform(0.9, 1.1) * (1.06 if a["sex"] == "man" else 0.94), 4),
    }
    a["headwear_rgb"] = list(rng.choice(HEADWEAR_RGB))
    return a


# Versions of what the avatar factory draws from the same attributes: 1 as the embedded model's training data
# (age shows only in the hair colour its draw favours), 2 age shown on the face as well.
LOOKS = (1, 2)

# Families whose value can change with nothing else about the avatar changing (no other attribute's draw depends
# on them): a data set's variants (generate_dataset --variants) re-render its avatars with one of them changed.
# Age also can from looks 2, where it shows on the face (the avatar keeps the hair colour drawn for its own age).
VARIABLE_FAMILIES = ("hair_color", "glasses", "shirt_color", "earrings", "age")
FIRST_LOOKS_THAT_SHOW = {"age": 2}


def variant_value(attrs: dict[str, Any], family: str, seed: int) -> str:
    """Another value of `family` (one of VARIABLE_FAMILIES) than `attrs` has, drawn uniformly from the avatar's
    seed."""
    rng = random.Random(f"rodin-variant-{seed}-{family}")
    return rng.choice([v for v in FAMILIES[family] if v != attrs[family]])


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def caption(attrs: dict[str, Any]) -> str:
    """A short English description, e.g. 'an old man with short grey hair, a beard and round glasses'."""
    person = {"young": "young", "adult": "", "old": "old"}[attrs["age"]]
    noun = f"{person} {attrs['sex']}".strip()
    subject = f"{_article(noun)} {noun}"

    hair_colour = attrs["hair_color"]
    style = attrs["hair_style"]
    hair = {
        "bald": "a bald head",
        "buzz": f"buzzed {hair_colour} hair",
        "short": f"short {hair_colour} hair",
        "bob": f"a {hair_colour} bob",
        "long": f"long {hair_colour} hair",
        "bun": f"{hair_colour} hair in a bun",
        "mohawk": f"a {hair_colour} mohawk",
    }[style]
    parts = [hair]
    if attrs["facial_hair"] != "none":
        parts.append(f"a {attrs['facial_hair']}")
    if attrs["glasses"] != "none":
        parts.append(f"{attrs['glasses']} glasses")
    if attrs["earrings"] != "none":
        parts.append(f"{'stud' if attrs['earrings'] == 'studs' else 'hoop'} earrings")
    if len(parts) > 1:
        described = ", ".join(parts[:-1]) + " and " + parts[-1]
    else:
        described = parts[0]
    text = f"{subject} with {described}"
    clothes = {"t_shirt": "t-shirt", "collared_shirt": "collared shirt", "turtleneck": "turtleneck"}[
        attrs["clothing"]
    ]
    wearing = [f"{_article(attrs['shirt_color'])} {attrs['shirt_color']} {clothes}"]
    if attrs["headwear"] != "none":
        wearing.insert(0, f"a {attrs['headwear'].replace('_', ' ')}")
    text += ", wearing " + " and ".join(wearing)
    text += f", {attrs['skin_tone']} skin and {attrs['eye_color']} eyes"
    return text
