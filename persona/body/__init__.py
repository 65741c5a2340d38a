"""Parametric body models behind one interface (`BodyModel`); anny is the default."""
