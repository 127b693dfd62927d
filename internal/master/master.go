package master

import "strconv"

// Master is the identity published for a cluster: the host and port of
// its main key and the addresses of its /ipv4 and /ipv6 keys. Validate
// checks one, Complete fills its addresses in.
type Master struct {
	Host string `json:"host"`
	Port int    `json:"port"`
	IPv4 string `json:"ipv4"`
	IPv6 string `json:"ipv6"`
}

// HostPort returns "host:port", the value of a cluster's main key. IPv6
// literals are written as orchestrator writes them, without brackets.
func (m Master) HostPort() string {
	return m.Host + ":" + strconv.Itoa(m.Port)
}
