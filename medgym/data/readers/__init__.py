"""Format readers behind :mod:`medgym.data.io`: Pillow rasters, DICOM and NIfTI.

Use :func:`medgym.data.io.read_image_file` / :func:`medgym.data.io.read_image_bytes`; these
modules are the per-format halves of that dispatcher and share its pixel budget and errors.
"""
