// Package rdma is xfer's "rdma" data transport: streams carried by UCX's UCP
// API, which drives InfiniBand/RoCE verbs when the machine has such a NIC and
// falls back to TCP or shared memory otherwise (UCX_TLS, UCX_NET_DEVICES).
//
// The real transport needs cgo and libucx and is built only with the rdma
// build tag and cgo enabled (rdma.go, ucx.c). Otherwise the package still
// registers a transport named "rdma" whose Probe and Open explain how to get
// the real one, so xfer can always name it. See docs/rdma.md.
package rdma
