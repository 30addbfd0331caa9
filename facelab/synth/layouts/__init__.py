"""The face world's dataset writers, one module per real dataset's on-disk layout
(``vggface2``, ``lfw``, ``utkface``, ``affectnet``, ``afew``, ``vgaf``, ``scenes``).

Each module holds its layout's names (files, folders, headers) as constants beside its
writer; :mod:`facelab.synth.writers` dispatches to them and caches what they write.
"""
