"""motcua district/province hub.

Enrollment and revocation of nodes, push/pull endpoints, verification, storage backends, conflict
review and dashboards arrive with the sync issue; the hub will import only `node.sync`, never `node.web`.
"""
