// Package atomicfile writes small files whole or not at all, and durably.
package atomicfile
