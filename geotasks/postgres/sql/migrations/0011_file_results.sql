-- A result may be a file of another format than GeoJSON (a FlatGeobuf, a GeoPackage, a zipped
-- shapefile: geotasks.geo.writing), stored as its bytes, like GeoJSON.
ALTER TABLE geotasks.result DROP CONSTRAINT result_kind_check;
ALTER TABLE geotasks.result ADD CONSTRAINT result_kind_check
    CHECK (kind IN ('value', 'geojson', 'file', 'failure'));
