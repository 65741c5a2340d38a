"""Driving motions and generated training videos.

motions.py: the motion library; driving.py: driving clips (motions on the subject, cameras
like the photo's); condition.py: skeleton conditioning images (DWPose, Wan); training_set.py:
the typed training set; generator.py: the generator interface and its backends.
"""
