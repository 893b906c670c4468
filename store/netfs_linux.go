package store

import "golang.org/x/sys/unix"

// Filesystem magic numbers (statfs f_type) of network and cluster
// filesystems on which SQLite's WAL shared memory must not be used.
var networkFS = map[int64]string{
	0x6969:     "nfs",
	0xff534d42: "cifs",
	0xfe534d42: "smb2",
	0x517b:     "smb",
	0x0bd00bd0: "lustre",
	0x47504653: "gpfs",
	0x65735546: "fuse",
	0x00c36400: "ceph",
	0x19830326: "fhgfs/beegfs",
	0x013111a8: "ibrix",
	0xa501fcf5: "vxfs",
	0x6e667364: "nfsd",
}

func networkFilesystem(dir string) (string, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "", false
	}
	return networkFSName(int64(st.Type))
}

// networkFSName names a statfs f_type that is a network or cluster
// filesystem.
func networkFSName(magic int64) (string, bool) {
	name, ok := networkFS[magic]
	return name, ok
}
