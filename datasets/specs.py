"""The MotionSpecs of the two supported datasets and the channel orders they leave undocumented.

Where a dataset does not document what a column means, the order below is this project's stated
assumption; the sample-data generator writes by it and the face adapters read by it, so both sides
stay consistent and a user with better knowledge changes it in one place.
"""

from __future__ import annotations

from .interaction import ChannelGroup, MotionSpec

# --- Seamless Interaction (the released files' keys and shapes) ------------------------------------
SMPLH_GROUPS = (
    ChannelGroup("smplh:global_orient", (3,), "axis_angle", "pelvis rotation, camera frame (y down)"),
    ChannelGroup("smplh:body_pose", (21, 3), "axis_angle", "SMPL-H body joints 1..21"),
    ChannelGroup("smplh:left_hand_pose", (15, 3), "axis_angle", "left hand, 15 joints, no PCA"),
    ChannelGroup("smplh:right_hand_pose", (15, 3), "axis_angle", "right hand, 15 joints, no PCA"),
    ChannelGroup("smplh:translation", (3,), "position", "camera-relative (pred_cam_t), not metric"),
)
MOVEMENT_GROUPS = (  # V00 files only
    ChannelGroup("movement:FAUValue", (24,), "value", "24 facial action unit intensities, [0, 2]"),
    ChannelGroup("movement:alignment_head_rotation", (3,), "axis_angle", "head rotation"),
    ChannelGroup("movement:expression", (128,), "value", "Imitator expression latent (no decoder)"),
    ChannelGroup("movement:emotion_valence", (1,), "value", "about -0.6..0.6"),
    ChannelGroup("movement:emotion_arousal", (1,), "value", "about -0.4..1.3"),
    ChannelGroup("movement:emotion_scores", (8,), "value", "8 emotion classes, logit-like"),
    ChannelGroup("movement:gaze_encodings", (2,), "value", "neural gaze encoding, not angles"),
    ChannelGroup("movement:head_encodings", (3,), "value", "neural head encoding, not angles"),
)
SEAMLESS_SPEC = MotionSpec("seamless", SMPLH_GROUPS + MOVEMENT_GROUPS)

# The order of the 24 `movement:FAUValue` columns is undocumented (seamless.md 2.3, issue #32).
# Assumed here: the 24 AUs most face-analysis tools report, in ascending AU number. Columns 16-18
# (AU20, AU22, AU23 under this assumption) are effectively always zero in the real data.
SEAMLESS_FAU_ORDER: tuple[str, ...] = (
    "AU01",
    "AU02",
    "AU04",
    "AU05",
    "AU06",
    "AU07",
    "AU09",
    "AU10",
    "AU11",
    "AU12",
    "AU13",
    "AU14",
    "AU15",
    "AU16",
    "AU17",
    "AU18",
    "AU20",
    "AU22",
    "AU23",
    "AU24",
    "AU25",
    "AU26",
    "AU28",
    "AU43",
)
assert len(SEAMLESS_FAU_ORDER) == 24

# The order of `movement:emotion_scores` is undocumented (issue #33); third parties assume this.
SEAMLESS_EMOTION_ORDER: tuple[str, ...] = (
    "anger",
    "contempt",
    "disgust",
    "fear",
    "happiness",
    "neutral",
    "sadness",
    "surprise",
)

# --- REACT 2025 / MARS (the challenge's released feature files) ----------------------------------
# facial-attributes (T, 25): [0:15] AU occurrences, [15:17] valence, arousal, [17:25] expression
# probabilities. coefficients (T, 58): [0:52] FaceVerse-v2 expression, [52:55] rotation,
# [55:58] translation.
REACT_GROUPS = (
    ChannelGroup("react:au", (15,), "binary", "15 AU occurrences (GraphAU)"),
    ChannelGroup("react:valence_arousal", (2,), "value", "valence, arousal in about [-1, 1]"),
    ChannelGroup("react:expression_probs", (8,), "probability", "8 expression categories"),
    ChannelGroup("react:3dmm_expression", (52,), "value", "FaceVerse v2 expression (ARKit-fitted)"),
    ChannelGroup("react:3dmm_rotation", (3,), "axis_angle", "head rotation"),
    ChannelGroup("react:3dmm_translation", (3,), "position", "head translation"),
)
REACT_SPEC = MotionSpec("react", REACT_GROUPS)
REACT_ATTRIBUTE_SLICES = {  # group -> columns of the 25-d facial-attributes file
    "react:au": slice(0, 15),
    "react:valence_arousal": slice(15, 17),
    "react:expression_probs": slice(17, 25),
}
REACT_COEFFICIENT_SLICES = {  # group -> columns of the 58-d coefficients file
    "react:3dmm_expression": slice(0, 52),
    "react:3dmm_rotation": slice(52, 55),
    "react:3dmm_translation": slice(55, 58),
}

# No REACT repository names its 15 AUs (react.md, section 1). Assumed: GraphAU's BP4D+DISFA
# subset most used for reactions, ascending.
REACT_AU_ORDER: tuple[str, ...] = (
    "AU01",
    "AU02",
    "AU04",
    "AU06",
    "AU07",
    "AU09",
    "AU10",
    "AU12",
    "AU14",
    "AU15",
    "AU17",
    "AU23",
    "AU24",
    "AU25",
    "AU26",
)
assert len(REACT_AU_ORDER) == 15
# Expression categories of Toisoul et al. (2021), the source of the 8 probabilities.
REACT_EXPRESSION_ORDER: tuple[str, ...] = (
    "neutral",
    "happy",
    "sad",
    "surprise",
    "fear",
    "disgust",
    "anger",
    "contempt",
)
# FaceVerse v2's 52 expression components are fitted to ARKit's 52 blendshapes; their order is
# `exp_name_list` in faceverse_simple_v2.npy (a licensed file, not read here). Assumed: ARKit's
# documented order, ARKIT_BLENDSHAPES below (the avatar's face weights use the same names).

# Apple ARKit's 52 blendshape locations, in the order of ARFaceAnchor.BlendShapeLocation's
# documentation (eyes, jaw, mouth, brows, cheeks, nose, tongue).
ARKIT_BLENDSHAPES: tuple[str, ...] = (
    "eyeBlinkLeft",
    "eyeLookDownLeft",
    "eyeLookInLeft",
    "eyeLookOutLeft",
    "eyeLookUpLeft",
    "eyeSquintLeft",
    "eyeWideLeft",
    "eyeBlinkRight",
    "eyeLookDownRight",
    "eyeLookInRight",
    "eyeLookOutRight",
    "eyeLookUpRight",
    "eyeSquintRight",
    "eyeWideRight",
    "jawForward",
    "jawLeft",
    "jawRight",
    "jawOpen",
    "mouthClose",
    "mouthFunnel",
    "mouthPucker",
    "mouthLeft",
    "mouthRight",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthFrownLeft",
    "mouthFrownRight",
    "mouthDimpleLeft",
    "mouthDimpleRight",
    "mouthStretchLeft",
    "mouthStretchRight",
    "mouthRollLower",
    "mouthRollUpper",
    "mouthShrugLower",
    "mouthShrugUpper",
    "mouthPressLeft",
    "mouthPressRight",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
    "browDownLeft",
    "browDownRight",
    "browInnerUp",
    "browOuterUpLeft",
    "browOuterUpRight",
    "cheekPuff",
    "cheekSquintLeft",
    "cheekSquintRight",
    "noseSneerLeft",
    "noseSneerRight",
    "tongueOut",
)
BLENDSHAPE_INDEX = {name: i for i, name in enumerate(ARKIT_BLENDSHAPES)}
assert len(ARKIT_BLENDSHAPES) == 52

SPECS = {"seamless": SEAMLESS_SPEC, "react": REACT_SPEC}

# --- what the reaction model and the metrics use of each spec ------------------------------------
# The model reads the speaker's and writes the listener's REACTION_GROUPS. Seamless leaves out
# smplh:translation (camera-relative, not metric: it moves with the camera, not the person) and the
# encodings without a decoder (movement:expression, gaze/head encodings).
REACTION_GROUPS: dict[str, tuple[str, ...]] = {
    "seamless": (
        "smplh:global_orient",
        "smplh:body_pose",
        "smplh:left_hand_pose",
        "smplh:right_hand_pose",
        "movement:FAUValue",
        "movement:alignment_head_rotation",
        "movement:emotion_valence",
        "movement:emotion_arousal",
        "movement:emotion_scores",
    ),
    "react": tuple(g.name for g in REACT_GROUPS),
}
# The REACT metrics use the 25 facial attributes in three parts, each with its FRDist weight
# (react.md 5.2: AU 1/15, valence-arousal 1, expression 1/8). Seamless's equivalent: the 24 FAU
# intensities (weight 1/24), valence and arousal (1), the 8 emotion scores (1/8): 34 channels.
# Binary parts are thresholded at 0.5 in predictions before scoring, as the REACT code does.
METRIC_GROUPS: dict[str, tuple[tuple[tuple[str, ...], float, bool], ...]] = {
    # (groups, FRDist weight, binary)
    "react": (
        (("react:au",), 1 / 15, True),
        (("react:valence_arousal",), 1.0, False),
        (("react:expression_probs",), 1 / 8, False),
    ),
    "seamless": (
        (("movement:FAUValue",), 1 / 24, False),
        (("movement:emotion_valence", "movement:emotion_arousal"), 1.0, False),
        (("movement:emotion_scores",), 1 / 8, False),
    ),
}
