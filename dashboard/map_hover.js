// The Explore map's hover thumbnail: a floating picture of the image under the mouse.
//
// Streamlit draws the map with plotly.js (st.plotly_chart). This component finds that chart
// by its layout.meta, listens to plotly's own hover events (gd.on, plotly.js's public event
// API) and shows the hovered image's thumbnail above the mouse. Thumbnails come from
// Python one at a time: a hover sets the component's "hovered" state, the fragment that
// mounts the component reruns and sends that image's thumbnail back as data. Each
// thumbnail is kept, so an image hovered again shows at once. Without the chart (or
// without this script) the map keeps plotly's text hover.
export default function (component) {
  const { data, setStateValue } = component;
  const S = (window.__imagelabMapHover ??= {
    cache: new Map(), hovered: null, x: 0, y: 0, timer: null, meta: null, set: null,
  });
  S.set = setStateValue;
  S.meta = data.meta;
  if (data.thumb) S.cache.set(data.thumb.id, data.thumb);

  let tip = document.getElementById("imagelab-map-hover");
  if (!tip) {
    tip = document.createElement("div");
    tip.id = "imagelab-map-hover";
    tip.setAttribute("data-testid", "imagelab-map-hover");
    Object.assign(tip.style, {
      position: "fixed", zIndex: 100000, pointerEvents: "none", display: "none",
      background: "white", border: "1px solid #999", borderRadius: "6px", padding: "4px",
      boxShadow: "0 2px 8px rgba(0,0,0,.25)", font: "12px sans-serif", color: "#222",
      textAlign: "center",
    });
    document.body.appendChild(tip);
  }

  const show = () => {
    if (S.hovered === null) { tip.style.display = "none"; return; }
    const t = S.cache.get(S.hovered);
    tip.replaceChildren();
    if (t && !t.src) {
      const note = document.createElement("div");
      note.textContent = t.caption;
      tip.append(note);
    } else if (t) {
      const img = document.createElement("img");
      img.src = t.src;
      img.alt = t.caption;
      img.dataset.imageId = String(t.id);
      Object.assign(img.style, {
        width: t.width + "px", height: t.height + "px", display: "block", margin: "0 auto",
        imageRendering: t.pixelated ? "pixelated" : "auto",
      });
      const cap = document.createElement("div");
      cap.textContent = t.caption;
      tip.append(img, cap);
    } else {
      const wait = document.createElement("div");
      wait.textContent = "#" + S.hovered + " …";
      Object.assign(wait.style, { width: "96px", lineHeight: "96px" });
      tip.append(wait);
    }
    tip.style.display = "block";
    // Above the mouse (plotly's own label sits level with the point), below if no room.
    const w = tip.offsetWidth, h = tip.offsetHeight, gap = 14;
    const top = S.y - gap - h >= 4 ? S.y - gap - h : Math.min(S.y + gap, window.innerHeight - h - 4);
    tip.style.left = Math.min(Math.max(4, S.x - w / 2), window.innerWidth - w - 4) + "px";
    tip.style.top = top + "px";
  };

  const onHover = (ev) => {
    const p = ev && ev.points && ev.points[0];
    if (!p || p.customdata === undefined) return;
    const id = Number(Array.isArray(p.customdata) ? p.customdata[0] : p.customdata);
    if (!Number.isFinite(id)) return;
    if (ev.event && ev.event.clientX !== undefined) { S.x = ev.event.clientX; S.y = ev.event.clientY; }
    S.hovered = id;
    show();
    if (!S.cache.has(id)) {
      clearTimeout(S.timer);
      S.timer = setTimeout(() => { if (S.hovered === id) S.set("hovered", id); }, 60);
    }
  };
  const onLeave = () => { S.hovered = null; show(); };

  const attach = () => {
    for (const gd of document.querySelectorAll(".js-plotly-plot")) {
      if (!gd.layout || gd.layout.meta !== S.meta || gd.__imagelabHover || !gd.on) continue;
      gd.__imagelabHover = true;
      gd.on("plotly_hover", onHover);
      gd.on("plotly_unhover", onLeave);
      gd.on("plotly_selecting", onLeave);
      gd.addEventListener("mousemove", (e) => { S.x = e.clientX; S.y = e.clientY; });
      gd.addEventListener("mouseleave", onLeave);
    }
  };
  attach();
  show();
  // The chart may be drawn after this component, or redrawn into a new element.
  const every = setInterval(attach, 400);
  return () => { clearInterval(every); tip.style.display = "none"; };
}
