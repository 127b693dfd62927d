package master

// CheckLoopbackWith is CheckLoopback with the host looked up by r.
var CheckLoopbackWith = checkLoopback

// HostsResolver is the resolver CheckLoopback looks host names up with.
var HostsResolver = hostsResolver
