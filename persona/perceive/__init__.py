"""Perception: from the photo to what the body fit needs (person mask, 2D keypoints, camera).

`person.perceive_person` runs mediapipe (embedded, offline) and decides whether the photo is
usable; `keypoints` maps its landmarks to the body model's keypoint layout; `fit` fits the
body model to them.
"""
