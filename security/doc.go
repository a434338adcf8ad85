// Package security makes and loads a cluster's TLS material and says what a
// certificate's holder may do. It issues a development CA and member and
// client certificates signed by it (ECDSA P-256), writes and reads them as
// PEM files, builds the tls.Config of a member's port, of its connections to
// other members and of a client, and reads the Role a certificate carries in
// a URI SAN (galena:role:member, galena:role:admin, ...). It does no
// networking and knows no other Galena package.
package security
