"""AiiDAlab home-page tile of the aiida-mofmlp app (AiiDAlab calls ``get_start_widget``)."""

import ipywidgets as ipw


def get_start_widget(appbase, jupbase, notebase):
    return ipw.HTML(
        f"""
        <div style="text-align:center">
          <a href="{appbase}/mofmlp.ipynb" target="_blank">
            <b>MOF machine-learning potentials</b><br>
            active learning of MACE potentials for metal-organic frameworks and their guests
          </a>
        </div>
        """
    )
