"""What a converted model package is (bottom layer): its description, metadata keys, the Model protocol."""
