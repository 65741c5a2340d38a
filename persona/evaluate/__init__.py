"""Ground-truth evaluation: synthetic subjects and the PERSONA benchmark."""
