// Package lint holds tests that check the shape of the module itself. Its
// one table, rules, says for every package of the module what it must not
// import, what it must not depend on even indirectly, and for some the only
// things it may import, so that imports point one way: the certification
// rule links no networking and no storage engine, the client only the wire
// contract, the command and the fault tests nothing inside a member. The
// table has a row for every package, so a new package must say where it
// stands.
package lint
