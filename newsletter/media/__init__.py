"""Images for issues: checked and resized uploads, kept in a storage, reused from a library.

``images`` turns bytes into the widths the email shows (Pillow); ``storage``
keeps the files (the data folder, or an S3-compatible bucket); ``library``
records them and puts one on an issue item.
"""
