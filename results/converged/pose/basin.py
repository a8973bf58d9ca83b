import torch, numpy as np
from scipy.spatial.transform import Rotation
from dsmnet.dataset.subtomograms import load_dataset
from dsmnet.losses.pose import TurnedDensity
from dsmnet.heads.pose import rotation_from_6d, angle_between
torch.set_num_threads(1)
d = load_dataset('results/converged/data/A_test')
idx = torch.arange(0, 3000, 190)
_, t, _ = d.batch(idx, {"density", "pose", "class"})
P, D = t["pose"], t["density"].float()
L = TurnedDensity()
for start_deg in (30, 60, 90, 180):
    rv = Rotation.random(len(P), random_state=1).as_rotvec()
    rv = rv / np.linalg.norm(rv, axis=1, keepdims=True) * np.deg2rad(start_deg) * np.random.default_rng(0).uniform(0.5, 1, (len(P), 1))
    start = P @ torch.from_numpy(Rotation.from_rotvec(rv).as_matrix()).float()
    six = torch.cat([start[:, :, 0], start[:, :, 1]], 1).clone().requires_grad_(True)
    opt = torch.optim.Adam([six], lr=0.02)
    for _ in range(200):
        opt.zero_grad(); L(rotation_from_6d(six), P, D).sum().backward(); opt.step()
    with torch.no_grad():
        R = rotation_from_6d(six); l = L(R, P, D); l0 = L(start, P, D)
    print(start_deg, "start loss", l0.median().item(), "end loss", l.median().item(), "frac<0.1", (l < 0.1).float().mean().item())
