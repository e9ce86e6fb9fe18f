"""In-the-wild estimation: models behind small interfaces, and the geometry that turns their outputs into 3D boxes."""
