public enum PGPlaceholder {}
