SELECT 1 WHERE false; -- local stand-in for the broker's 0002 (never committed)
