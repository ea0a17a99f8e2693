"""Media libraries: video readers, audio, writers, the frame store and pure video operations."""
