// Package lint holds tests that check the shape of the module itself, such
// as which packages may import which.
package lint
